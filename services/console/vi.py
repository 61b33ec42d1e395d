"""Vietnamese formatting: numbers `1.234`, dates `02/03/2025 08:00` in Asia/Ho_Chi_Minh, due times in words, labels."""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from shared.enums import LABELS_VI
from shared.labels_vi import CHANNELS, CIRCUMSTANCES

VN = ZoneInfo("Asia/Ho_Chi_Minh")

STATUS = {
    "pending": "Chờ tiếp nhận",
    "acknowledged": "Đã tiếp nhận",
    "in_progress": "Đang xử lý",
    "done": "Hoàn thành",
    "declined": "Từ chối",
}
ACTIONS = {
    "acknowledge": "Tiếp nhận",
    "in_progress": "Bắt đầu xử lý",
    "done": "Hoàn thành",
    "declined": "Từ chối",
}
# What an assignment in each status may become (routing's lifecycle; the API has the last word).
NEXT_ACTIONS = {
    "pending": ("acknowledge", "declined"),
    "acknowledged": ("in_progress", "declined"),
    "in_progress": ("done", "declined"),
}
ROLE = {"lead": "Chủ trì", "support": "Phối hợp"}
RISK = {"high": "Cao", "medium": "Trung bình", "low": "Thấp"}
TIMELINE = {
    "reported": "Tiếp nhận báo cáo",
    "routed": "Phân công xử lý",
    "assignment.acknowledged": "Đơn vị đã tiếp nhận",
    "assignment.in_progress": "Đơn vị bắt đầu xử lý",
    "assignment.done": "Đơn vị đã hoàn thành",
    "assignment.declined": "Đơn vị từ chối",
    "assignment.overdue": "Quá hạn tiếp nhận",
    "escalated": "Báo lên cấp trên do quá hạn",
    "step_overdue.initial_assessment": "Quá hạn đánh giá ban đầu (12 giờ) — đã báo Chủ tịch UBND xã",
    "step.initial_assessment": "Đã đánh giá ban đầu",
    "step.emergency_measures": "Đã áp dụng biện pháp can thiệp khẩn cấp",
    "step.detailed_assessment": "Đã đánh giá chi tiết, họp xác định nhu cầu (Mẫu 03)",
    "step.plan": "Đã lập kế hoạch hỗ trợ, can thiệp (Mẫu 04)",
    "step.plan_approved": "Chủ tịch UBND xã đã phê duyệt kế hoạch (Mẫu 05)",
    "step.implementation": "Bắt đầu thực hiện kế hoạch: đã giao nhiệm vụ cho các đơn vị",
    "step.review": "Đã đánh giá kết quả thực hiện kế hoạch (Mẫu 06)",
    "step.closed": "Đóng hồ sơ quy trình bảo vệ trẻ em",
    "step_overdue.plan": "Quá hạn lập kế hoạch hỗ trợ, can thiệp (5 ngày làm việc) — đã báo Chủ tịch UBND xã",
    "step_overdue.temporary_care": "Hết thời hạn tạm thời cách ly, chăm sóc thay thế — đã báo Chủ tịch UBND xã",
    "care_decided": "Quyết định tạm thời cách ly trẻ, chăm sóc thay thế",
    "closed": "Kết thúc vụ việc",
    "reopened": "Mở lại vụ việc",
    "linked": "Liên kết với hồ sơ cùng trẻ em",
    "duplicate_dismissed": "Xác định không trùng hồ sơ khác",
    "erased": "Đã xoá dữ liệu cá nhân",
}
# The case process of Decree 56/2017 (issue 17): its steps, the form of each, and the initial assessment's fields.
STEPS = {
    "received": "Đã tiếp nhận thông báo (Mẫu 01)",
    "initial_assessment": "Đã đánh giá ban đầu (Mẫu 02)",
    "emergency_measures": "Đã áp dụng biện pháp khẩn cấp",
    "detailed_assessment": "Đã đánh giá chi tiết (Mẫu 03)",
    "plan": "Đã lập kế hoạch hỗ trợ, can thiệp (Mẫu 04)",
    "plan_approved": "Kế hoạch đã được phê duyệt (Mẫu 05)",
    "implementation": "Đang thực hiện kế hoạch",
    "review": "Đã đánh giá kết quả (Mẫu 06)",
    "closed": "Đã đóng hồ sơ",
}
# What each step's move is, as the next thing to do (a 409 names the allowed ones).
NEXT_STEP = {
    "initial_assessment": "đánh giá ban đầu (Mẫu 02)",
    "emergency_measures": "ghi biện pháp can thiệp khẩn cấp",
    "detailed_assessment": "đánh giá chi tiết (Mẫu 03)",
    "plan": "lập kế hoạch hỗ trợ, can thiệp (Mẫu 04)",
    "plan_approved": "Chủ tịch UBND xã phê duyệt kế hoạch (Mẫu 05)",
    "implementation": "thực hiện kế hoạch",
    "review": "đánh giá kết quả (Mẫu 06)",
    "closed": "kết thúc vụ việc",
}
STEP_DUE = {
    "initial_assessment": "Đánh giá ban đầu (Mẫu 02), trong 12 giờ",
    "plan": "Lập kế hoạch hỗ trợ, can thiệp (Mẫu 04), trong 5 ngày làm việc",
}
ASSESSMENT_FIELDS = {
    "harm": "Tổn hại hoặc nguy cơ tổn hại đối với trẻ",
    "danger_level": "Mức độ nguy hiểm",
    "urgent_protection": "Cần bảo vệ khẩn cấp",
    "measures_taken": "Biện pháp đã thực hiện",
    "assessed_by": "Người đánh giá",
    "assessed_at": "Thời điểm đánh giá",
}
ASSESSMENT_DONE = {"1": "Đã ghi đánh giá ban đầu (Mẫu 02)."} | {
    str(n): f"Đã ghi bản sửa đổi lần {n - 1} của đánh giá ban đầu (phiên bản {n})." for n in range(2, 100)
}
PROCESS_DONE = {
    "emergency_measures": "Đã ghi biện pháp can thiệp khẩn cấp.",
    "care_decision": "Đã ghi quyết định tạm thời cách ly trẻ, chăm sóc thay thế.",
    "detailed_assessment": "Đã ghi đánh giá chi tiết (Mẫu 03).",
    "plan": "Đã ghi kế hoạch hỗ trợ, can thiệp (Mẫu 04). Chờ Chủ tịch UBND xã phê duyệt.",
    "plan_approval": "Đã phê duyệt kế hoạch (Mẫu 05). Các nhiệm vụ đã được giao cho đơn vị thực hiện.",
    "review": "Đã ghi đánh giá kết quả (Mẫu 06).",
}
ASSESSMENT_ERRORS = {
    "harm": "Tổn hại hoặc nguy cơ tổn hại đối với trẻ: bắt buộc, tối đa 4.000 ký tự.",
    "danger_level": "Mức độ nguy hiểm: chọn Cao, Trung bình hoặc Thấp.",
    "urgent_protection": "Cần bảo vệ khẩn cấp: chọn Có hoặc Không.",
    "measures_taken": "Biện pháp đã thực hiện: bắt buộc khi trẻ cần bảo vệ khẩn cấp, tối đa 4.000 ký tự.",
    "assessed_by": "Người đánh giá: bắt buộc, tối đa 200 ký tự.",
    "assessed_at": "Thời điểm đánh giá: không được trước lúc tiếp nhận báo cáo, không được ở tương lai.",
}

# The sections of the commune's report document the officer writes (issue 16); its status and timeliness: shared/labels_vi.py.
NARRATIVE = (
    ("situation", "I. Tình hình chung"),
    ("results", "II. Kết quả thực hiện nhiệm vụ theo đơn vị"),
    ("incidents", "III. Tình hình trẻ em bị xâm hại, vụ việc và kết quả xử lý"),
    ("assessment", "IV. Đánh giá chung (ưu điểm, hạn chế, nguyên nhân)"),
    ("next_tasks", "V.1. Phương hướng, nhiệm vụ thời gian tới"),
    ("recommendations", "V.2. Kiến nghị, đề xuất"),
)
DOCUMENT_DONE = {
    "save": "Đã lưu dự thảo.",
    "submit": "Đã trình Chủ tịch ký duyệt.",
    "return": "Đã trả lại để chỉnh sửa.",
    "approve": "Đã ký duyệt báo cáo.",
    "send": "Đã gửi báo cáo lên huyện.",
}
DOCUMENT_REFUSED = {
    403: "Bạn không có quyền thực hiện thao tác này với báo cáo.",
    409: "Báo cáo đang ở trạng thái khác (có thể đã có người thao tác trước, hoặc chưa có số liệu kỳ này). Hãy tải lại trang.",
    422: "Chưa thực hiện được: cần viết đủ các mục trước khi trình ký, và ghi họ tên người ký khi ký duyệt.",
}
# A possible duplicate's status (issue 17).
DUPLICATE_STATUS = {"open": "Chưa xem xét", "linked": "Đã liên kết (cùng một trẻ em)", "dismissed": "Không trùng"}
AGE_BANDS = {"0-5": "0-5 tuổi", "6-10": "6-10 tuổi", "11-15": "11-15 tuổi", "16-17": "16-17 tuổi", "unknown": "Không rõ tuổi"}
# Password change refusals (people-api.md), by code.
PASSWORD_ERRORS = {
    "too_short": "Mật khẩu mới quá ngắn.",
    "same_as_username": "Mật khẩu mới không được trùng tên đăng nhập.",
    "contains_name": "Mật khẩu mới không được chứa họ tên của bạn.",
    "common": "Mật khẩu mới quá phổ biến, dễ bị đoán. Hãy chọn mật khẩu khác.",
    "wrong_current_password": "Mật khẩu hiện tại không đúng.",
    "same_as_current": "Mật khẩu mới phải khác mật khẩu hiện tại.",
}


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """For sorting names: without tones, đ as d."""
    return "".join(c for c in unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D")) if not unicodedata.combining(c)).lower()


def label(code: str | None) -> str:
    """The Vietnamese name of a domain code (category, urgency, unit type, sex, channel, status)."""
    if code is None:
        return "—"
    for table in (STATUS, CHANNELS, CIRCUMSTANCES, AGE_BANDS, LABELS_VI):
        if code in table:
            return table[code]
    return code


def number(value: int | float | None) -> str:
    """1234 -> `1.234`; 12.5 -> `12,5`; None -> `—` (no data is not zero)."""
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        whole, _, frac = f"{value:,.1f}".partition(".")
        return whole.replace(",", ".") + "," + frac
    return f"{int(value):,}".replace(",", ".")


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def moment(value: datetime | str | None) -> str:
    """`02/03/2025 08:00` in Vietnam's time."""
    if value is None:
        return "—"
    return _aware(value).astimezone(VN).strftime("%d/%m/%Y %H:%M")


def day(value: date | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return value.strftime("%d/%m/%Y")


def end_day(value: datetime | str | None) -> str:
    """A deadline as an official writes it: 24:00 of a day is `hết ngày 07/12/2026` (not `08/12/2026 00:00`); any
    other time `07/12/2026 14:30`."""
    if value is None:
        return "—"
    local = _aware(value).astimezone(VN)
    if (local.hour, local.minute, local.second) == (0, 0, 0):
        return f"hết ngày {(local.date() - timedelta(days=1)).strftime('%d/%m/%Y')}"
    return local.strftime("%d/%m/%Y %H:%M")


def dong(value: int | None) -> str:
    """An amount in đồng: `500.000 đ`."""
    return "—" if value is None else f"{number(int(value))} đ"


def duration(seconds: float) -> str:
    """A length of time in the largest sensible unit: `45 phút`, `2 giờ 5 phút`, `3 ngày`."""
    minutes = max(0, int(seconds // 60))
    if minutes < 60:
        return f"{minutes} phút"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} giờ" + (f" {rest} phút" if rest else "")
    days, hours = divmod(hours, 24)
    return f"{days} ngày" + (f" {hours} giờ" if hours else "")


def due(due_at: datetime | str, now: datetime) -> tuple[str, bool]:
    """(`còn 45 phút` | `quá hạn 2 giờ`, overdue) for an acknowledgement deadline."""
    left = (_aware(due_at) - now).total_seconds()
    if left >= 0:
        return f"còn {duration(left)}", False
    return f"quá hạn {duration(-left)}", True


def age(child: dict, on: date | None = None) -> str:
    """A child's age in years from the birth date, else the estimate; `không rõ` when neither."""
    if child.get("age_years") is not None:
        return f"{child['age_years']} tuổi"
    birth = child.get("birth_date")
    if birth:
        born = date.fromisoformat(str(birth)[:10])
        on = on or datetime.now(VN).date()
        years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
        return f"{years} tuổi"
    if child.get("age_band") in AGE_BANDS and child["age_band"] != "unknown":
        return AGE_BANDS[child["age_band"]]  # an erased case keeps the band, not the birth date
    return "không rõ tuổi"


# Activities under the commune's plan (issue 16): the API's refusals by field, in words a unit's member reads.
ACTIVITY_ERRORS = {
    "unit_id": "Đơn vị không hợp lệ.",
    "task_id": "Nhiệm vụ này không có trong kế hoạch của xã, hoặc không giao cho đơn vị này.",
    "kind": "Nhiệm vụ đã chọn không có loại hoạt động này.",
    "held_on": "Ngày không hợp lệ, ở tương lai, hoặc xã chưa có kế hoạch cho năm đó.",
    "counts": "Số liệu không phù hợp với loại hoạt động: chỉ ghi các số liệu của loại hoạt động đã chọn; số buổi (hoặc số "
              "chính của hoạt động) ít nhất là 1; số nam + nữ và tổng theo nhóm tuổi không vượt quá tổng số người tham dự.",
    "note": "Ghi chú tối đa 500 ký tự và không được chứa thông tin cá nhân (số điện thoại, số giấy tờ, địa chỉ email).",
}
ACTIVITY_STATUS = {"recorded": "Đã ghi nhận", "withdrawn": "Đã rút lại"}


# Notifications of a unit (issue 18): events, channels, delivery statuses and the notifier's errors in words.
NOTIFY_EVENTS = {
    "assignment.created": "Việc mới được giao",
    "assignment.overdue": "Quá hạn tiếp nhận",
    "incident.escalated": "Vụ việc được chuyển lên",
    "incident.step_overdue": "Quá hạn một bước của quy trình bảo vệ trẻ em",
    "incident.closed": "Vụ việc đã kết thúc",
    "report.due": "Sắp đến hạn báo cáo",
}
NOTIFY_CHANNELS = {"webhook": "Webhook (hệ thống của đơn vị)", "email": "Thư điện tử", "amqp": "Hàng đợi riêng (RabbitMQ)"}
DELIVERY_STATUS = {"pending": "Đang chờ gửi", "delivered": "Đã gửi", "failed": "Không gửi được (đã hết lượt thử)", "dropped": "Đã hủy"}
# The notifier's last errors and disabling reasons (routing writes them in English), by how they begin.
NOTIFY_ERRORS = (
    ("HTTP 410", "Địa chỉ nhận trả lời 410 (không còn tồn tại): đã ngừng gửi"),
    ("HTTP ", "Địa chỉ nhận trả lời lỗi"),
    ("timed out", "Quá thời gian chờ trả lời"),
    ("connection failed", "Không kết nối được"),
    ("cannot resolve the host", "Không tìm thấy tên máy chủ"),
    ("the host has no address", "Không tìm thấy tên máy chủ"),
    ("the host resolves to a private", "Địa chỉ nội bộ, không được phép gửi đến"),
    ("not an http(s) URL", "Địa chỉ không phải http(s)"),
    ("deleted by", "Đã ngừng bởi"),
    ("the subscription was deleted", "Đăng ký đã bị ngừng"),
    ("the subscription is disabled", "Đăng ký đã bị ngừng"),
    ("no SMTP server configured", "Hệ thống chưa cấu hình máy chủ thư"),
    ("the SMTP server refused the address", "Máy chủ thư từ chối địa chỉ này"),
    ("SMTP failed", "Gửi thư không được"),
    ("broker refused", "Hàng đợi từ chối nhận"),
)


def notify_error(text: str | None) -> str:
    """The notifier's English error or reason in Vietnamese, keeping its detail (`HTTP 500`, the username)."""
    if not text:
        return ""
    for prefix, words in NOTIFY_ERRORS:
        if text.startswith(prefix):
            if prefix == "HTTP ":
                return f"{words} ({text.split(':')[0]})"
            if prefix == "deleted by":
                return f"{words} {text.removeprefix('deleted by').strip()}"
            return words
    return f"Lỗi: {text}"
