"""Pure form and chart logic: the report form to the intake API's JSON (errors in Vietnamese, by field name),
the API's errors back onto the fields, and a summary's breakdowns as chart rows."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from shared.enums import Category, Channel, Sex, SpecialCircumstance, Urgency
from shared.plans import COUNT_FIELDS

from . import vi

CHOICES = {
    "category": [(c.value, vi.label(c.value)) for c in Category],
    "urgency": [(u.value, vi.label(u.value)) for u in Urgency],
    "channel": [(c.value, vi.CHANNELS[c.value]) for c in Channel],
    "sex": [(s.value, vi.label(s.value)) for s in Sex],
    "special_circumstances": [(s.value, vi.CIRCUMSTANCES[s.value]) for s in SpecialCircumstance],
    "consent": [("", "Chưa hỏi"), ("yes", "Đồng ý"), ("no", "Không đồng ý")],
}
PHONE = re.compile(r"^\+?[0-9][0-9 .-]{5,19}$")
REQUIRED = "Thông tin bắt buộc."


def child_count(form: dict) -> int:
    try:
        return max(1, min(int(form.get("children_count", 1)), 20))
    except (TypeError, ValueError):
        return 1


def _text(form: dict, key: str) -> str:
    value = form.get(key, "")
    return (value[-1] if isinstance(value, list) else value).strip()


def _list(form: dict, key: str) -> list[str]:
    value = form.get(key, [])
    return value if isinstance(value, list) else [value] if value else []


def incident_payload(form: dict, commune: str, now: datetime) -> tuple[dict[str, Any], dict[str, str]]:
    """The intake API's body from the form, or the errors by form field name (in Vietnamese)."""
    errors: dict[str, str] = {}
    payload: dict[str, Any] = {"commune_code": commune, "consent": {}}
    if _text(form, "report_id"):
        payload["report_id"] = _text(form, "report_id")
    if not re.fullmatch(r"\d{5}", commune):
        errors["commune_code"] = "Chọn xã nơi xảy ra vụ việc."
    for field in ("category", "urgency", "channel"):
        value = _text(form, field)
        if value not in dict(CHOICES[field]):
            errors[field] = "Hãy chọn một mục trong danh sách."
        payload[field] = value
    if _text(form, "hamlet"):
        payload["hamlet"] = _text(form, "hamlet")
    occurred = _text(form, "occurred_at")
    if occurred:
        try:
            moment = datetime.fromisoformat(occurred).replace(tzinfo=vi.VN)
        except ValueError:
            errors["occurred_at"] = "Thời gian không đúng dạng ngày giờ."
        else:
            if moment > now + timedelta(minutes=10):
                errors["occurred_at"] = "Thời gian xảy ra không thể ở tương lai."
            payload["occurred_at"] = moment.isoformat()
    description = _text(form, "description")
    if not description:
        errors["description"] = "Mô tả ngắn gọn sự việc."
    elif len(description) > 4000:
        errors["description"] = "Mô tả dài quá 4.000 ký tự."
    payload["description"] = description
    payload["children"] = [_child(form, i, errors, now) for i in range(child_count(form))]
    anonymous = _text(form, "reporter-anonymous") == "on"
    reporter = {k: _text(form, f"reporter-{k}") or None for k in ("name", "phone", "relation")}
    if reporter["phone"] and not PHONE.match(reporter["phone"]):
        errors["reporter-phone"] = "Số điện thoại chỉ gồm chữ số (có thể có dấu +, dấu cách, dấu chấm)."
    if anonymous or any(reporter.values()):
        payload["reporter"] = {**reporter, "anonymous": anonymous}
    for who in ("child", "guardian"):
        answer = _text(form, f"consent-{who}")
        payload["consent"][who] = {"yes": True, "no": False}.get(answer)
    return payload, errors


def _child(form: dict, i: int, errors: dict[str, str], now: datetime) -> dict[str, Any]:
    prefix = f"children-{i}-"
    child: dict[str, Any] = {"sex": _text(form, prefix + "sex")}
    if child["sex"] not in dict(CHOICES["sex"]):
        errors[prefix + "sex"] = "Chọn giới tính của trẻ (hoặc “Không biết”)."
    if _text(form, prefix + "full_name"):
        child["full_name"] = _text(form, prefix + "full_name")
    birth = _text(form, prefix + "birth_date")
    if birth:
        try:
            born = date.fromisoformat(birth)
        except ValueError:
            errors[prefix + "birth_date"] = "Ngày sinh không đúng dạng ngày."
        else:
            if born > now.astimezone(vi.VN).date():
                errors[prefix + "birth_date"] = "Ngày sinh không thể ở tương lai."
            child["birth_date"] = birth
    age = _text(form, prefix + "age_years")
    if age:
        if not age.isdigit() or int(age) > 17:
            errors[prefix + "age_years"] = "Tuổi ước tính là số từ 0 đến 17."
        else:
            child["age_years"] = int(age)
    if _text(form, prefix + "school"):
        child["school"] = _text(form, prefix + "school")
    circumstances = _list(form, prefix + "special_circumstances")
    if any(c not in dict(CHOICES["special_circumstances"]) for c in circumstances):
        errors[prefix + "special_circumstances"] = "Hãy chọn trong danh sách."
    child["special_circumstances"] = circumstances
    return child


def _located(exc) -> list[tuple[list[str], dict]]:
    """An API's 422 list as (where in the body, the error)."""
    return [([str(p) for p in e.get("loc", []) if p != "body"], e) for e in (exc.detail if isinstance(exc.detail, list) else [])]


def api_errors(exc) -> dict[str, str]:
    """intake's 422 list (`loc` like body.children.0.sex) as form field names; other refusals on the form."""
    if exc.status == 429:
        return {"form": "Đã gửi quá nhiều báo cáo trong thời gian ngắn. Vui lòng chờ một phút rồi gửi lại; nội dung vẫn được giữ."}
    if exc.status == 409:
        return {"form": "Mã báo cáo này đã được dùng. Tải lại trang để báo cáo mới."}
    errors: dict[str, str] = {}
    for loc, error in _located(exc):
        name = "-".join(loc[:3]) if loc else "form"
        if loc and loc[0] in ("reporter", "consent"):
            name = "-".join(loc[:2])
        kind = error.get("type", "")
        errors[name] = REQUIRED if kind == "missing" else "Hãy chọn một mục trong danh sách." if kind == "enum" else "Giá trị không hợp lệ."
    return errors or {"form": "Báo cáo chưa được nhận. Vui lòng kiểm tra lại các thông tin."}


CHARTS = [
    ("by_category", "Vụ việc theo loại"),
    ("by_urgency", "Vụ việc theo mức độ khẩn cấp"),
    ("by_channel", "Vụ việc theo kênh tiếp nhận"),
    ("by_hamlet", "Vụ việc theo ấp, sóc"),
    ("by_sex", "Trẻ em theo giới tính"),
    ("by_age_band", "Trẻ em theo nhóm tuổi"),
]


def charts(indicators: dict | None, hierarchy) -> list[dict[str, Any]]:
    """Each breakdown as rows of (label, count, bar width in %), biggest first; empty breakdowns left out."""
    if not indicators:
        return []
    hamlets = {f"{c}.hamlet.{local}": name for c, hs in hierarchy.hamlets.items() for local, name in hs}
    out = []
    for key, title in CHARTS:
        values = {k: v for k, v in indicators.get(key, {}).items() if v}
        if not values:
            continue
        top = max(values.values())
        names = hamlets if key == "by_hamlet" else {}
        rows = [
            {"label": names.get(k, "Không rõ ấp" if key == "by_hamlet" and k == "unknown" else vi.label(k)), "count": v,
             "width": round(100 * v / top, 1)}
            for k, v in sorted(values.items(), key=lambda kv: -kv[1])
        ]
        out.append({"key": key, "title": title, "rows": rows})
    response = indicators.get("response") or {}
    rows = []
    for unit_type, r in sorted(response.items()):
        if r.get("assignments"):
            share = 100 * r["acknowledged_within_deadline"] / r["assignments"]
            rows.append({"label": vi.label(unit_type), "count": r["acknowledged_within_deadline"], "of": r["assignments"],
                         "width": round(share, 1)})
    if rows:
        out.append({"key": "response", "title": "Tiếp nhận đúng hạn theo đơn vị (số lượt / số được giao)", "rows": rows})
    return out


def periods(now: datetime) -> list[tuple[str, str]]:
    """The periods offered in the picker: this year and last, their plan periods, halves and quarters, recent months."""
    year = now.astimezone(vi.VN).year
    out = []
    for y in (year, year - 1):
        out += [(str(y), f"Năm {y}"), (f"{y}-6M", f"Báo cáo 6 tháng {y}"), (f"{y}-12M", f"Báo cáo năm {y} (12 tháng)"),
                (f"{y}S1", f"6 tháng đầu năm {y}"), (f"{y}S2", f"6 tháng cuối năm {y}")]
        out += [(f"{y}Q{q}", f"Quý {q}/{y}") for q in range(1, 5)]
    month = now.astimezone(vi.VN).month
    out += [(f"{year}{m:02d}", f"Tháng {m}/{year}") for m in range(month, 0, -1)]
    return out


# -- an activity under the commune's plan (issue 16) ------------------------------------------------


def activity_payload(form: dict, unit_id: str, today: date) -> tuple[dict[str, Any], dict[str, str]]:
    """The intake API's body of an activity from the form (counts as `counts-<field>`), or the errors by field."""
    errors: dict[str, str] = {}
    payload: dict[str, Any] = {"unit_id": unit_id, "task_id": _text(form, "task_id"), "kind": _text(form, "kind")}
    for field in ("unit_id", "task_id", "kind"):
        if not payload[field]:
            errors[field] = "Hãy chọn một mục trong danh sách."
    held = _text(form, "held_on")
    try:
        day = date.fromisoformat(held)
    except ValueError:
        errors["held_on"] = REQUIRED if not held else "Ngày không đúng dạng."
    else:
        if day > today:
            errors["held_on"] = "Ngày thực hiện không thể ở tương lai."
    payload["held_on"] = held
    counts = {}
    for field in COUNT_FIELDS:
        value = _text(form, f"counts-{field}")
        if not value:
            continue
        if not value.isdigit():
            errors[f"counts-{field}"] = "Nhập một số nguyên không âm."
        else:
            counts[field] = int(value)
    payload["counts"] = counts
    note = _text(form, "note")
    if len(note) > 500:
        errors["note"] = vi.ACTIVITY_ERRORS["note"]
    payload["note"] = note or None
    return payload, errors


def activity_api_errors(exc) -> dict[str, str]:
    """intake's refusals of an activity as Vietnamese messages on the form's fields."""
    if exc.status == 403:
        return {"form": "Bạn chỉ được ghi kết quả cho đơn vị của mình (cán bộ phụ trách trẻ em: cho các đơn vị của xã)."}
    if exc.status == 409:
        return {"form": "Hoạt động này đã được rút lại, không sửa được nữa."}
    errors: dict[str, str] = {}
    for loc, _ in _located(exc):
        name = "-".join(loc[:2]) if loc else "form"
        errors[name] = vi.ACTIVITY_ERRORS.get(name, vi.ACTIVITY_ERRORS["counts"] if name.startswith("counts") else "Giá trị không hợp lệ.")
    return errors or {"form": "Kết quả chưa được ghi nhận. Vui lòng kiểm tra lại các thông tin."}


# -- the initial assessment (Mẫu 02 of Decree 56/2017; issue 17) ----------------------------------------


def assessment_payload(form: dict, now: datetime) -> tuple[dict[str, Any], dict[str, str]]:
    """Routing's body for POST /v1/incidents/{id}/assessment from the form, or the errors by field (in Vietnamese).

    `assessed_at` left at the value the form was shown with (`assessed_at_shown`) means "now": the moment it is sent."""
    errors: dict[str, str] = {}
    payload: dict[str, Any] = {}
    for field, most in (("harm", 4000), ("assessed_by", 200)):
        payload[field] = _text(form, field)
        if not payload[field] or len(payload[field]) > most:
            errors[field] = vi.ASSESSMENT_ERRORS[field]
    payload["danger_level"] = _text(form, "danger_level")
    if payload["danger_level"] not in vi.RISK:
        errors["danger_level"] = vi.ASSESSMENT_ERRORS["danger_level"]
    urgent = _text(form, "urgent_protection")
    if urgent not in ("yes", "no"):
        errors["urgent_protection"] = vi.ASSESSMENT_ERRORS["urgent_protection"]
    payload["urgent_protection"] = urgent == "yes"
    payload["measures_taken"] = _text(form, "measures_taken")
    if (payload["urgent_protection"] and not payload["measures_taken"]) or len(payload["measures_taken"]) > 4000:
        errors["measures_taken"] = vi.ASSESSMENT_ERRORS["measures_taken"]
    assessed_at = _text(form, "assessed_at")
    if not assessed_at or assessed_at == _text(form, "assessed_at_shown"):
        payload["assessed_at"] = now.isoformat()
    else:
        try:
            moment = datetime.fromisoformat(assessed_at).replace(tzinfo=vi.VN)
        except ValueError:
            errors["assessed_at"] = "Thời điểm đánh giá không đúng dạng ngày giờ."
        else:
            if moment > now + timedelta(minutes=5):
                errors["assessed_at"] = vi.ASSESSMENT_ERRORS["assessed_at"]
            payload["assessed_at"] = moment.isoformat()
    return payload, errors


def assessment_api_errors(exc) -> dict[str, str]:
    """routing's refusals of an assessment as Vietnamese messages on the form's fields (a 422's `loc`; the two rules
    across fields come with no field, and are told apart by what they name)."""
    if exc.status == 403:
        return {"action": "Chỉ cán bộ phụ trách bảo vệ trẻ em của xã được ghi đánh giá ban đầu."}
    if exc.status == 409:
        return {"action": "Không ghi được đánh giá ban đầu: hồ sơ đã đóng. Trang đã được cập nhật."}
    errors: dict[str, str] = {}
    for loc, error in _located(exc):
        name = loc[0] if loc else next((f for f in ("measures_taken", "assessed_at") if f in str(error.get("msg", ""))), "")
        errors[name if name in vi.ASSESSMENT_ERRORS else "action"] = vi.ASSESSMENT_ERRORS.get(name, "Giá trị không hợp lệ.")
    return errors or {"action": "Đánh giá chưa được ghi. Vui lòng kiểm tra lại các thông tin."}


# -- a unit's notification subscription (issue 18) ----------------------------------------------------

HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


def subscription_payload(form: dict, units: set[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """routing's body of a subscription from the form (events as repeated `events`), or the errors by field."""
    errors: dict[str, str] = {}
    unit_id, channel, target = _text(form, "unit_id"), _text(form, "channel"), _text(form, "target")
    if unit_id not in units:
        errors["unit_id"] = "Đơn vị nhận: hãy chọn một đơn vị của xã."
    if channel not in vi.NOTIFY_CHANNELS:
        errors["channel"] = "Cách nhận: hãy chọn webhook, thư điện tử hoặc hàng đợi."
    if channel == "amqp" and unit_id:
        target = f"agency.{unit_id}"  # the unit's own queue: nothing to type
    elif not target:
        errors["target"] = "Địa chỉ nhận: thông tin bắt buộc."
    elif channel == "webhook" and (not re.match(r"^https?://[^/\s]+", target) or len(target) > 500):
        errors["target"] = "Địa chỉ nhận: webhook phải là một địa chỉ http(s)://… (nên dùng https)."
    elif channel == "email" and not EMAIL.match(target):
        errors["target"] = "Địa chỉ nhận: nhập một địa chỉ thư điện tử, ví dụ congan@example.vn."
    events = _list(form, "events")
    if not events:
        errors["events"] = "Báo tin khi: chọn ít nhất một loại tin."
    elif any(e not in vi.NOTIFY_EVENTS for e in events):
        errors["events"] = "Báo tin khi: hãy chọn trong danh sách."
    quiet = {k: _text(form, k) for k in ("quiet_start", "quiet_end")}
    for key, name in (("quiet_start", "Giờ yên lặng từ"), ("quiet_end", "Giờ yên lặng đến")):
        if quiet[key] and not HHMM.match(quiet[key]):
            errors[key] = f"{name}: giờ theo dạng HH:MM, ví dụ 22:00."
    if bool(quiet["quiet_start"]) != bool(quiet["quiet_end"]) and not errors.keys() & quiet.keys():
        errors["quiet_end" if quiet["quiet_start"] else "quiet_start"] = "Giờ yên lặng: nhập cả giờ bắt đầu và giờ kết thúc (hoặc để trống cả hai)."
    payload = {"unit_id": unit_id, "channel": channel, "target": target, "events": events,
               "quiet_start": quiet["quiet_start"] or None, "quiet_end": quiet["quiet_end"] or None}
    return payload, errors


SUBSCRIPTION_FIELDS = ("unit_id", "channel", "target", "events", "quiet_start", "quiet_end")


def subscription_api_errors(exc) -> dict[str, str]:
    """routing's refusals of a subscription on the form's fields, in Vietnamese."""
    if exc.status == 403:
        return {"form": "Chỉ cán bộ phụ trách trẻ em của xã và quản trị viên được đăng ký nhận thông báo."}
    errors: dict[str, str] = {}
    for loc, _ in _located(exc):
        name = loc[0] if loc and loc[0] in SUBSCRIPTION_FIELDS else "target"
        errors[name] = "Giá trị không hợp lệ; hãy kiểm tra lại."
    return errors or {"form": "Đăng ký chưa được lưu. Vui lòng kiểm tra lại các thông tin."}


def shown_target(channel: str, target: str) -> str:
    """What the page shows of a target: a webhook's host only (its path may hold a key), an address, a queue."""
    if channel == "webhook":
        match = re.match(r"^(https?)://(?:[^@/]*@)?([^/?#]+)", target)
        return f"{match[1]}://{match[2]}/…" if match else "(địa chỉ không hợp lệ)"
    return target


# -- the other forms of the case process (Decree 56/2017; issue 17) ---------------------------------------------------
# Each form: routing's path, its title, and its fields as (name, label, kind, most characters, required, hint). Kinds:
# text, textarea, moment (a datetime-local: left as shown means "now"), day (a date, yyyy-mm-dd or dd/mm/yyyy),
# risk (high / medium / low), yesno, signer (chairman / deputy). The plan's tasks are rows `tasks-<i>-<field>`.

DAY_HINT = "Ngày/tháng/năm, ví dụ 07/12/2026."
MOMENT_HINT = "Ngày/tháng/năm giờ:phút, ví dụ 30/11/2026 14:05. Để nguyên nếu là lúc này."
PROCESS_FORMS: dict[str, dict[str, Any]] = {
    "emergency_measures": {
        "path": "emergency-measures",
        "title": "Biện pháp can thiệp khẩn cấp",
        "submit": "Ghi biện pháp khẩn cấp",
        "fields": (
            ("measures", "Biện pháp can thiệp khẩn cấp đã áp dụng", "textarea", 4000, True, "Việc đã làm để trẻ được an toàn."),
            ("separation_proposed", "Đề nghị Chủ tịch UBND xã quyết định tạm thời cách ly trẻ khỏi cha mẹ, người chăm sóc", "yesno", 0, True, ""),
            ("taken_by", "Người, cơ quan thực hiện", "text", 200, True, ""),
            ("taken_at", "Thời điểm thực hiện", "moment", 0, True, MOMENT_HINT),
        ),
    },
    "care_decision": {
        "path": "care-decision",
        "title": "Quyết định tạm thời cách ly trẻ, chăm sóc thay thế",
        "submit": "Ghi quyết định",
        "fields": (
            ("decision_no", "Số quyết định", "text", 60, True, "Ví dụ 12/QĐ-UBND."),
            ("placement", "Nơi và người chăm sóc thay thế", "textarea", 1000, True, ""),
            ("starts_on", "Từ ngày", "day", 0, True, DAY_HINT),
            ("ends_on", "Đến hết ngày", "day", 0, True, "Tối đa 15 ngày kể cả ngày bắt đầu, trừ khi gia hạn. " + DAY_HINT),
            ("extension_reason", "Lý do gia hạn (bắt buộc khi quá 15 ngày)", "textarea", 2000, False, ""),
            ("signed_by", "Người ký", "text", 200, True, ""),
            ("signed_as", "Ký với tư cách", "signer", 0, True, ""),
        ),
    },
    "detailed_assessment": {
        "path": "detailed-assessment",
        "title": "Đánh giá chi tiết, họp xác định nhu cầu (Mẫu 03)",
        "submit": "Ghi đánh giá chi tiết",
        "fields": (
            ("meeting_at", "Thời điểm họp xác định nhu cầu", "moment", 0, True, MOMENT_HINT),
            ("participants", "Thành phần tham dự (các đơn vị, gia đình)", "textarea", 2000, True, ""),
            ("needs", "Nhu cầu của trẻ", "textarea", 4000, True, ""),
            ("findings", "Kết quả đánh giá khác", "textarea", 4000, False, ""),
            ("assessed_by", "Cán bộ thực hiện đánh giá", "text", 200, True, ""),
        ),
    },
    "plan": {
        "path": "plan",
        "title": "Kế hoạch hỗ trợ, can thiệp (Mẫu 04)",
        "submit": "Ghi kế hoạch",
        "fields": (
            ("goals", "Nhu cầu của trẻ và mục tiêu của kế hoạch", "textarea", 4000, True, ""),
            ("drafted_by", "Người lập kế hoạch", "text", 200, True, ""),
        ),
    },
    "plan_approval": {
        "path": "plan-approval",
        "title": "Quyết định phê duyệt kế hoạch (Mẫu 05)",
        "submit": "Phê duyệt kế hoạch",
        "fields": (
            ("decision_no", "Số quyết định", "text", 60, True, "Ví dụ 15/QĐ-UBND."),
            ("approved_on", "Ngày ký", "day", 0, True, DAY_HINT),
            ("signed_by", "Người ký", "text", 200, True, ""),
            ("signed_as", "Ký với tư cách", "signer", 0, True, ""),
        ),
    },
    "review": {
        "path": "review",
        "title": "Đánh giá kết quả, mức độ nguy cơ (Mẫu 06)",
        "submit": "Ghi đánh giá Mẫu 06",
        "fields": (
            ("harm_severity", "Mức độ nghiêm trọng của tổn hại", "risk", 0, True, ""),
            ("abuser_access", "Khả năng người gây tổn hại tiếp cận trẻ", "risk", 0, True, ""),
            ("care_obstacles", "Trở ngại trong môi trường chăm sóc trẻ", "risk", 0, True, ""),
            ("child_capacity", "Nguy cơ do khả năng tự bảo vệ, phục hồi của trẻ còn hạn chế", "risk", 0, True, ""),
            ("overall", "Mức độ nguy cơ chung", "risk", 0, True, "Thấp: có thể kết thúc vụ việc; Trung bình hoặc Cao: lập kế hoạch mới."),
            ("notes", "Ghi chú", "textarea", 4000, False, ""),
            ("reviewed_by", "Người đánh giá kết quả", "text", 200, True, ""),
            ("reviewed_at", "Thời điểm đánh giá kết quả", "moment", 0, True, MOMENT_HINT),
        ),
    },
}
TASK_FIELDS = (
    ("task", "Nhiệm vụ (không ghi tên trẻ)", "text", 500, True, ""),
    ("unit_id", "Đơn vị thực hiện", "unit", 0, True, ""),
    ("due_on", "Hạn hoàn thành (hết ngày)", "day", 0, True, DAY_HINT),
    ("cost_vnd", "Kinh phí (đồng)", "money", 0, False, "Để trống nếu không tốn kinh phí."),
    ("funding", "Nguồn kinh phí", "text", 200, False, ""),
)
SIGNERS = {"chairman": "Chủ tịch UBND xã", "deputy": "Phó Chủ tịch (KT. Chủ tịch)"}
YESNO = {"yes": "Có", "no": "Không"}
PLAN_ROWS, PLAN_MOST_TASKS = 3, 30
_KIND_ERROR = {
    "risk": "chọn Cao, Trung bình hoặc Thấp",
    "yesno": "chọn Có hoặc Không",
    "signer": "chọn Chủ tịch hoặc Phó Chủ tịch",
    "unit": "chọn một đơn vị của xã",
    "day": "bắt buộc, ngày theo dạng ngày/tháng/năm, ví dụ 07/12/2026",
    "moment": "bắt buộc, ngày giờ theo dạng ngày/tháng/năm giờ:phút, ví dụ 30/11/2026 14:05",
    "money": "số tiền bằng đồng, chỉ gồm chữ số",
}


def parse_day(text: str) -> date | None:
    """A date typed as 2026-12-07 (what a date input sends) or 07/12/2026 (what an official types); None if neither."""
    text = text.strip()
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


def parse_moment(text: str) -> datetime | None:
    """A time in Vietnam typed as 30/11/2026 14:05 (or 2026-11-30T14:05, what a datetime input sends); None if neither."""
    text = " ".join(text.replace("lúc", " ").split())
    for pattern in ("%d/%m/%Y %H:%M", "%d/%m/%Y %Hh%M", "%d/%m/%Y %Hh", "%d-%m-%Y %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=vi.VN)
        except ValueError:
            continue
    return None


def task_count(form: dict) -> int:
    try:
        return max(1, min(int(_text(form, "tasks_count")), PLAN_MOST_TASKS))
    except ValueError:
        return PLAN_ROWS


def _field_value(form: dict, key: str, name: str, label: str, kind: str, most: int, required: bool, now: datetime,
                 errors: dict[str, str]) -> Any:
    """One field's value for routing's body; its error (in Vietnamese, naming the field) into `errors`."""
    value = _text(form, key)
    wrong = None
    out: Any = value
    if kind in ("text", "textarea"):
        if (required and not value) or len(value) > most:
            wrong = ("bắt buộc, " if required else "") + f"tối đa {number_vi(most)} ký tự"
    elif kind == "risk":
        wrong = None if value in vi.RISK else _KIND_ERROR[kind]
    elif kind == "yesno":
        wrong = None if value in YESNO else _KIND_ERROR[kind]
        out = value == "yes"
    elif kind == "signer":
        wrong = None if value in SIGNERS else _KIND_ERROR[kind]
    elif kind == "unit":
        wrong = None if value else _KIND_ERROR[kind]
    elif kind == "day":
        day = parse_day(value) if value else None
        wrong = None if day else _KIND_ERROR[kind]
        out = day.isoformat() if day else value
    elif kind == "money":
        digits = re.sub(r"[\s.,]", "", value.replace("đồng", "").replace("đ", ""))
        if not digits:
            out = 0
        elif digits.isdigit() and int(digits) <= 10_000_000_000:
            out = int(digits)
        else:
            wrong = _KIND_ERROR[kind]
    elif kind == "moment":
        if not value or value == _text(form, f"{key}_shown"):
            out = now.isoformat()
        else:
            moment = parse_moment(value)
            if moment is None:
                wrong = _KIND_ERROR[kind]
            else:
                if moment > now + timedelta(minutes=5):
                    wrong = "không được ở tương lai"
                # The minute being typed is "now" (a report received this same minute is not after 12:05:00).
                out = now.isoformat() if moment <= now < moment + timedelta(minutes=1) else moment.isoformat()
    if wrong:
        errors[key] = f"{label}: {wrong}."
    return out


def number_vi(value: int) -> str:
    return vi.number(value)


def process_payload(name: str, form: dict, now: datetime) -> tuple[dict[str, Any], dict[str, str]]:
    """routing's body for one of the process's forms from the posted fields, or the errors by field (in Vietnamese).
    A plan's rows left wholly empty are not tasks; the others must be whole."""
    errors: dict[str, str] = {}
    payload: dict[str, Any] = {}
    for key, label, kind, most, required, _ in PROCESS_FORMS[name]["fields"]:
        payload[key] = _field_value(form, key, key, label, kind, most, required, now, errors)
    if name == "plan":
        tasks = []
        for i in range(task_count(form)):
            if not any(_text(form, f"tasks-{i}-{f[0]}") for f in TASK_FIELDS):
                continue
            row = {}
            for key, label, kind, most, required, _ in TASK_FIELDS:
                row[key] = _field_value(form, f"tasks-{i}-{key}", key, f"Nhiệm vụ {i + 1}, {label.lower()}", kind, most,
                                        required, now, errors)
            tasks.append(row)
        if not tasks:
            errors["tasks"] = "Kế hoạch cần ít nhất một nhiệm vụ: ghi nhiệm vụ, đơn vị thực hiện và hạn hoàn thành."
        payload["tasks"] = tasks
    return payload, errors


def _label_of(name: str, loc: list[str], form: dict) -> tuple[str, str]:
    """(form field name, its label) of a routing 422 `loc`: a plan task's `tasks.<i>.<field>` as the row's field,
    numbered as the page numbers its rows (empty rows were left out of the body)."""
    fields = {f[0]: f[1] for f in PROCESS_FORMS[name]["fields"]}
    if loc and loc[0] == "tasks" and len(loc) >= 3 and loc[1].isdigit():
        filled = [i for i in range(task_count(form)) if any(_text(form, f"tasks-{i}-{f[0]}") for f in TASK_FIELDS)]
        row = filled[int(loc[1])] if int(loc[1]) < len(filled) else int(loc[1])
        label = dict((f[0], f[1]) for f in TASK_FIELDS).get(loc[2], loc[2])
        return f"tasks-{row}-{loc[2]}", f"Nhiệm vụ {row + 1}, {label.lower()}"
    if loc and loc[0] == "tasks":
        return "tasks", "Nhiệm vụ của kế hoạch"
    if loc and loc[0] in fields:
        return loc[0], fields[loc[0]]
    return "action", PROCESS_FORMS[name]["title"]


# routing's messages (English) and pydantic's error types, as what is wrong in Vietnamese.
_API_REASONS = (
    ("before the report was received", "không được trước lúc tiếp nhận báo cáo"),
    ("is in the future", "không được ở tương lai"),
    ("needs a timezone", "không đúng dạng ngày giờ"),
    ("ends_on is before starts_on", "ngày kết thúc không được trước ngày bắt đầu"),
    ("temporary care lasts at most", "tạm thời cách ly quá 15 ngày: ghi lý do gia hạn"),
    ("is not a unit of commune", "đơn vị không thuộc xã của vụ việc"),
    ("is not a registered unit", "đơn vị chưa được đăng ký hoặc đã ngừng hoạt động"),
)
_API_TYPES = {
    "missing": "bắt buộc",
    "string_too_short": "bắt buộc",
    "string_too_long": "quá dài",
    "too_short": "cần ít nhất một nhiệm vụ",
    "too_long": f"tối đa {PLAN_MOST_TASKS} nhiệm vụ",
    "greater_than_equal": "không được là số âm",
    "less_than_equal": "vượt quá mức cho phép",
    "literal_error": "hãy chọn trong danh sách",
    "enum": "hãy chọn trong danh sách",
    "date_from_datetime_parsing": "ngày không hợp lệ",
    "date_parsing": "ngày không hợp lệ",
    "datetime_parsing": "ngày giờ không hợp lệ",
}


def process_api_errors(name: str, exc, form: dict) -> dict[str, str]:
    """routing's refusals of a process form: a 422's `loc` onto the form's fields, named in Vietnamese; 403 and 409
    in words (`action`)."""
    title = PROCESS_FORMS[name]["title"]
    if exc.status == 403:
        who = "Chủ tịch UBND xã (hoặc Phó Chủ tịch ký thay)" if name in ("care_decision", "plan_approval") else "cán bộ phụ trách bảo vệ trẻ em của xã"
        return {"action": f"Chỉ {who} được ghi {title[0].lower()}{title[1:]}."}
    if exc.status == 409:
        return {"action": step_conflict(title, exc.detail)}
    errors: dict[str, str] = {}
    for loc, error in _located(exc):
        message = str(error.get("msg", ""))
        if not loc:  # a rule across fields: the field is named in the message
            field = next((f[0] for f in PROCESS_FORMS[name]["fields"] if f[0] in message), "")
            loc = [field] if field else []
        key, label = _label_of(name, loc, form)
        reason = next((words for english, words in _API_REASONS if english in message), None)
        reason = reason or _API_TYPES.get(str(error.get("type", "")), "giá trị không hợp lệ")
        errors.setdefault(key, f"{label}: {reason}.")
    return errors or {"action": f"{title}: chưa được ghi. Vui lòng kiểm tra lại các thông tin."}


def step_conflict(title: str, detail: Any) -> str:
    """A 409 of the process (routing's `current` and `allowed` steps) in words."""
    detail = detail if isinstance(detail, dict) else {}
    current, allowed = detail.get("current"), detail.get("allowed") or []
    if current == "closed":
        return f"Không ghi được {title[0].lower()}{title[1:]}: hồ sơ đã đóng. Trang đã được cập nhật."
    where = f" Hồ sơ đang ở bước “{vi.STEPS.get(current, current)}”." if current else ""
    nexts = "; ".join(vi.NEXT_STEP.get(s, s) for s in allowed)
    then = f" Việc tiếp theo có thể làm: {nexts}." if nexts else ""
    return f"Không ghi được {title[0].lower()}{title[1:]} ở bước này.{where}{then} Trang đã được cập nhật."
