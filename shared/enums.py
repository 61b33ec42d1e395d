"""Domain codes of domain.md, each with its Vietnamese label (the users read Vietnamese)."""

from enum import StrEnum


class UnitType(StrEnum):
    cp_officer = "cp_officer"
    police = "police"
    health = "health"
    school = "school"
    justice = "justice"
    culture_info = "culture_info"
    radio = "radio"
    womens_union = "womens_union"
    youth_union = "youth_union"
    fatherland_front = "fatherland_front"
    hamlet = "hamlet"
    chairman = "chairman"


class Category(StrEnum):
    sexual_abuse = "sexual_abuse"
    violence = "violence"
    school_violence = "school_violence"
    exploitation = "exploitation"
    trafficking = "trafficking"
    abandonment = "abandonment"
    neglect = "neglect"
    online_abuse = "online_abuse"
    injury = "injury"
    drowning = "drowning"
    malnutrition = "malnutrition"
    conflict_with_law = "conflict_with_law"
    child_marriage = "child_marriage"
    unsafe_environment = "unsafe_environment"
    special_circumstance = "special_circumstance"
    other = "other"


class Urgency(StrEnum):
    emergency = "emergency"
    high = "high"
    medium = "medium"
    low = "low"


class Channel(StrEnum):
    hotline_111 = "hotline_111"
    phone = "phone"
    in_person = "in_person"
    school = "school"
    health_station = "health_station"
    police = "police"
    hamlet = "hamlet"
    online = "online"
    other = "other"


class Sex(StrEnum):
    male = "male"
    female = "female"
    unknown = "unknown"


class AgeBand(StrEnum):
    a0_5 = "0-5"
    a6_10 = "6-10"
    a11_15 = "11-15"
    a16_17 = "16-17"
    unknown = "unknown"


class SpecialCircumstance(StrEnum):
    """The 14 groups of Law on Children Art. 10."""

    orphan = "orphan"
    abandoned = "abandoned"
    without_support = "without_support"
    disabled = "disabled"
    hiv_aids = "hiv_aids"
    conflict_with_law = "conflict_with_law"
    drug_use = "drug_use"
    left_school_to_work = "left_school_to_work"
    harmed_by_violence = "harmed_by_violence"
    exploited = "exploited"
    sexually_abused = "sexually_abused"
    trafficked = "trafficked"
    serious_illness_poor = "serious_illness_poor"
    migrant_without_caregiver = "migrant_without_caregiver"


class Role(StrEnum):
    lead = "lead"
    support = "support"


class RiskLevel(StrEnum):
    """The risk to the child found at review (Mẫu 06 of Decree 56/2017)."""

    high = "high"
    medium = "medium"
    low = "low"


class AssignmentStatus(StrEnum):
    pending = "pending"
    acknowledged = "acknowledged"
    in_progress = "in_progress"
    done = "done"
    declined = "declined"


LABELS_VI: dict[str, str] = {
    # unit types
    "cp_officer": "Công chức Văn hóa - Xã hội phụ trách công tác trẻ em",
    "police": "Công an xã",
    "health": "Trạm y tế xã",
    "school": "Trường học",
    "justice": "Công chức Tư pháp - Hộ tịch",
    "culture_info": "Công chức Văn hóa - thông tin",
    "radio": "Đài Truyền thanh xã",
    "womens_union": "Hội Liên hiệp Phụ nữ xã",
    "youth_union": "Đoàn Thanh niên xã",
    "fatherland_front": "Ủy ban MTTQ Việt Nam xã",
    "hamlet": "Ấp / Sóc",
    "chairman": "Chủ tịch / Phó Chủ tịch UBND xã",
    # categories
    "sexual_abuse": "Xâm hại tình dục",
    "violence": "Bạo lực",
    "school_violence": "Bạo lực học đường",
    "exploitation": "Bóc lột",
    "trafficking": "Mua bán trẻ em",
    "abandonment": "Bỏ rơi",
    "neglect": "Bỏ mặc",
    "online_abuse": "Xâm hại trên môi trường mạng",
    "injury": "Tai nạn thương tích",
    "drowning": "Đuối nước",
    "malnutrition": "Suy dinh dưỡng",
    "conflict_with_law": "Trẻ em vi phạm pháp luật",
    "child_marriage": "Tảo hôn",
    "unsafe_environment": "Môi trường không an toàn",
    "special_circumstance": "Trẻ em có hoàn cảnh đặc biệt cần hỗ trợ",
    "other": "Khác",
    # urgency
    "emergency": "Khẩn cấp",
    "high": "Cao",
    "medium": "Trung bình",
    "low": "Thấp",
    # sex
    "male": "Nam",
    "female": "Nữ",
    "unknown": "Không biết",
}

# Unit types a commune has several of; the others are one per commune.
MULTI_INSTANCE_TYPES = frozenset({UnitType.school, UnitType.hamlet})
