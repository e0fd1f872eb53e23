"""What the installer tools (``schoolgate hardware ...``) say to a person (zh_CN default, en)."""

from __future__ import annotations

DEFAULT_LOCALE = "zh_CN"
LOCALES = ("zh_CN", "en")

CATALOGUE: dict[str, dict[str, str]] = {
    "tap": {
        "zh_CN": "{at}  卡号 {uid}（{tech}）  十进制 {decimal}  反序十进制 {decimal_reversed}  韦根26 {wiegand26}",
        "en": "{at}  card {uid} ({tech})  decimal {decimal}  reversed decimal {decimal_reversed}  Wiegand-26 {wiegand26}",
    },
    "reading": {"zh_CN": "正在读卡：{spec}（按 Ctrl-C 结束）", "en": "Reading cards on {spec} (Ctrl-C to stop)"},
    "state": {"zh_CN": "读卡器状态：{state}", "en": "Reader state: {state}"},
    "stopped": {"zh_CN": "已停止，共读到 {count} 次刷卡", "en": "Stopped after {count} tap(s)"},
    "nfc_heading": {"zh_CN": "NFC 读卡器（nfcpy）：", "en": "NFC readers (nfcpy):"},
    "serial_heading": {"zh_CN": "串口：", "en": "Serial ports:"},
    "none_found": {"zh_CN": "  未找到", "en": "  none found"},
    "nfc_problem": {"zh_CN": "  无法查找 USB 读卡器：{problem}", "en": "  cannot look for USB readers: {problem}"},
    "device": {"zh_CN": "  {name}  {description}  →  --reader {specs}", "en": "  {name}  {description}  ->  --reader {specs}"},
}


def t(key: str, locale: str = DEFAULT_LOCALE, **params: object) -> str:
    entry = CATALOGUE[key]
    text = entry.get(locale) or entry[DEFAULT_LOCALE]
    return text.format(**{k: "—" if v is None else v for k, v in params.items()})
