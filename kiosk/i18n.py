"""The kiosk's message catalogue: every string a guard or a log reader sees (zh_CN default, en)."""

from __future__ import annotations

DEFAULT_LOCALE = "zh_CN"
LOCALES = ("zh_CN", "en")

CATALOGUE: dict[str, dict[str, str]] = {
    "checked_in": {"zh_CN": "{name}（{class_name}）已签到", "en": "{name} ({class_name}) checked in"},
    "already_checked_in": {"zh_CN": "{name}今天已签到", "en": "{name} is already checked in today"},
    "not_enrolled": {"zh_CN": "{name}未报名今天的课后服务", "en": "{name} is not enrolled in today's service"},
    "unknown_card": {"zh_CN": "未登记的卡：{card}", "en": "Unknown card: {card}"},
    "guardian_card": {"zh_CN": "家长卡：{name}，请在控制台核验接送", "en": "Guardian card: {name}; verify the pickup at the console"},
    "kiosk_error": {
        "zh_CN": "终端故障，此次刷卡未记录（{card}），请人工登记并联系管理员",
        "en": "Kiosk fault: this tap was not recorded ({card}); write it down and call the admin",
    },
    "staff_card": {"zh_CN": "教职工卡：{name}", "en": "Staff card: {name}"},
    "repeat_tap": {"zh_CN": "重复刷卡，已忽略", "en": "Repeated tap ignored"},
    "kiosk_started": {"zh_CN": "终端 {kiosk} 已启动（学校 {school}）", "en": "Kiosk {kiosk} started (school {school})"},
    "secret_created": {
        "zh_CN": "已生成本终端密钥，请管理员在中心登记：{command}",
        "en": "A secret was created for this kiosk; an admin registers it at central with: {command}",
    },
}


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def t(key: str, locale: str = DEFAULT_LOCALE, **params: object) -> str:
    entry = CATALOGUE[key]
    text = entry.get(locale) or entry[DEFAULT_LOCALE]
    return text.format_map(_Blank({k: "" if v is None else v for k, v in params.items()}))
