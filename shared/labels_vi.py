"""Vietnamese labels of the report's channels, a child's special circumstances and a report's sign-off and timeliness:
one wording for the console and the exports."""

CHANNELS = {
    "hotline_111": "Tổng đài 111",
    "phone": "Điện thoại",
    "in_person": "Trực tiếp",
    "school": "Nhà trường",
    "health_station": "Trạm y tế",
    "police": "Công an",
    "hamlet": "Ấp, sóc",
    "online": "Trực tuyến",
    "other": "Khác",
}
# Law on Children 2016, Art. 10.
CIRCUMSTANCES = {
    "orphan": "Mồ côi cả cha và mẹ",
    "abandoned": "Bị bỏ rơi",
    "without_support": "Không nơi nương tựa",
    "disabled": "Khuyết tật",
    "hiv_aids": "Nhiễm HIV/AIDS",
    "conflict_with_law": "Vi phạm pháp luật",
    "drug_use": "Nghiện ma túy",
    "left_school_to_work": "Phải bỏ học kiếm sống",
    "harmed_by_violence": "Bị tổn hại nghiêm trọng do bạo lực",
    "exploited": "Bị bóc lột",
    "sexually_abused": "Bị xâm hại tình dục",
    "trafficked": "Bị mua bán",
    "serious_illness_poor": "Mắc bệnh hiểm nghèo thuộc hộ nghèo, cận nghèo",
    "migrant_without_caregiver": "Di cư, lánh nạn chưa xác định được cha mẹ",
}

# A report document's sign-off (issue 16) and whether it was sent by the plan's date.
DOCUMENT_STATUS = {"draft": "Đang soạn thảo", "submitted": "Đã trình ký", "approved": "Đã ký duyệt", "sent": "Đã gửi huyện"}
NO_DOCUMENT = "Chưa lập"
TIMELINESS = {"on_time": "Đúng hạn", "late": "Trễ hạn", "pending": "Chưa đến hạn"}

# A step of the Decree 56/2017 case process not done in time (incident.step_overdue's `step`): the console's wording
# and the notifier's e-mail.
STEP_OVERDUE = {
    "initial_assessment": "Quá hạn đánh giá ban đầu (Mẫu 02, trong 12 giờ kể từ khi nhận thông báo)",
    "plan": "Quá hạn lập kế hoạch hỗ trợ, can thiệp (Mẫu 04, trong 5 ngày làm việc)",
    "temporary_care": "Hết thời hạn chăm sóc thay thế tạm thời theo quyết định của Chủ tịch UBND xã",
}
