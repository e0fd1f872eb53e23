"""The kiosk's message catalogue: every string a guard or a log reader sees (zh_CN default, en)."""

from __future__ import annotations

DEFAULT_LOCALE = "zh_CN"
LOCALES = ("zh_CN", "en")

CATALOGUE: dict[str, dict[str, str]] = {
    # --- decisions (engine outcomes) ---
    "checked_in": {"zh_CN": "{name}（{class_name}）已签到：{group} {start}—{end}", "en": "{name} ({class_name}) checked in: {group} {start}–{end}"},
    "already_checked_in": {"zh_CN": "{name}已签到；接走请家长刷卡", "en": "{name} is already checked in; a guardian taps to take them"},
    "not_enrolled": {"zh_CN": "{name}未报名课后服务，不能签到", "en": "{name} is not enrolled in the after-school service"},
    "no_session_today": {"zh_CN": "{name}今天没有课后服务", "en": "{name} has no session today"},
    "too_early": {"zh_CN": "{name}：{group}{start}开始，尚未开放签到", "en": "{name}: {group} starts at {start}; check-in is not open yet"},
    "session_over": {"zh_CN": "{name}：{group}已于{end}结束", "en": "{name}: {group} ended at {end}"},
    "unknown_card": {"zh_CN": "未登记的卡：{card}", "en": "Unknown card: {card}"},
    "guardian_waiting": {"zh_CN": "家长{name}（{relation}）已刷卡，请孩子刷卡或在此选择", "en": "Guardian {name} ({relation}) tapped; the child taps next, or pick them here"},
    "staff_on": {"zh_CN": "{staff}到岗", "en": "{staff} is on duty"},
    "staff_off": {"zh_CN": "{staff}离岗", "en": "{staff} is off duty"},
    "already_left": {"zh_CN": "{name}今天已离校", "en": "{name} has already left today"},
    "self_dismissed": {"zh_CN": "{name}自行离校", "en": "{name} leaves alone (allowed)"},
    "guardian_barred": {"zh_CN": "注意！{guardian}被禁止接送，不得接走任何学生", "en": "WARNING! {guardian} is barred from taking any child"},
    "pickup_barred": {"zh_CN": "禁止接送！{guardian}不得接走{name}，请联系学校负责人", "en": "BARRED! {guardian} may not take {name}; call the school's lead"},
    "pickup_not_linked": {"zh_CN": "{guardian}不是{name}的登记家长，不能接走", "en": "{guardian} is not a registered guardian of {name}"},
    "pickup_not_allowed": {"zh_CN": "{guardian}未获授权接送{name}", "en": "{guardian} is not authorised to take {name}"},
    "pickup_link_expired": {"zh_CN": "{guardian}今天不在接送有效期内", "en": "{guardian}'s pickup authorisation is not valid today"},
    "not_on_site": {"zh_CN": "{name}今天未签到，不在校内", "en": "{name} is not checked in today"},
    "pickup_allowed": {"zh_CN": "{guardian}（{relation}）接{name}（{class_name}），请核对后确认", "en": "{guardian} ({relation}) takes {name} ({class_name}): check, then confirm"},
    "pickup_done": {"zh_CN": "{name}已由{guardian}接走", "en": "{name} left with {guardian}"},
    "pickup_refused": {"zh_CN": "门卫拒绝：{guardian}未能接走{name}", "en": "Refused by the guard: {guardian} does not take {name}"},
    "code_used": {"zh_CN": "该接送码已使用过", "en": "This pickup code was already used"},
    "code_wrong": {"zh_CN": "接送码不正确（或不是今天、不是这个孩子的）", "en": "Wrong pickup code (or not for today or this child)"},
    "code_locked": {"zh_CN": "{name}今天的接送码输错次数过多，本机不再受理，请联系家长或学校", "en": "Too many wrong codes for {name} today: this gate takes no more; call the guardian or the school"},
    "code_issuer_refused": {"zh_CN": "作废：签发该接送码的家长{guardian}已无权接送{name}，请联系学校负责人", "en": "Void: {guardian}, who issued this code, may no longer take {name}; call the school's lead"},
    "override_checkin": {"zh_CN": "已人工放行：{name}（{reason}）", "en": "Admitted by the guard: {name} ({reason})"},
    "override_pickup": {"zh_CN": "已人工放行接送：{name}（{reason}）", "en": "Pickup admitted by the guard: {name} ({reason})"},
    "visitor_in": {"zh_CN": "访客已登记进入", "en": "Visitor signed in"},
    "visitor_out": {"zh_CN": "访客已离开", "en": "Visitor signed out"},
    "alert_absent": {"zh_CN": "缺勤：{name}（{class_name}）开课后未签到", "en": "Absent: {name} ({class_name}) has not checked in"},
    "alert_late_pickup": {"zh_CN": "超时未接：{name}（{class_name}）仍在校", "en": "Late pickup: {name} ({class_name}) is still on site"},
    "alert_offline": {"zh_CN": "终端离线超过{offline_minutes}分钟，事件在本机保存", "en": "Kiosk offline for over {offline_minutes} min; events are kept here"},
    "alert_unacked": {"zh_CN": "有事件超过{unacked_minutes}分钟未被中心确认", "en": "An event has waited over {unacked_minutes} min for central"},
    "alert_roster_stale": {"zh_CN": "名单超过{roster_hours}小时未更新（禁止接送名单仍然生效）", "en": "Roster over {roster_hours} h old (barred lists still apply)"},
    "repeat_tap": {"zh_CN": "重复刷卡，已忽略", "en": "Repeated tap ignored"},
    "kiosk_error": {
        "zh_CN": "终端故障，此次刷卡未记录（{card}），请人工登记并联系管理员",
        "en": "Kiosk fault: this tap was not recorded ({card}); write it down and call the admin",
    },
    "action_error": {
        "zh_CN": "终端故障，此操作未记录，请人工登记并联系管理员",
        "en": "Kiosk fault: this was not recorded; write it down and call the admin",
    },
    # --- input errors ---
    "override_reason_required": {"zh_CN": "请填写放行原因", "en": "Type the reason for admitting"},
    "visitor_name_required": {"zh_CN": "请填写访客姓名（50字以内）", "en": "Type the visitor's name (up to 50 characters)"},
    "visitor_id4_invalid": {"zh_CN": "身份证号后4位应为4位数字（末位可为X）", "en": "Last 4 of the ID number: 4 digits (the last may be X)"},
    "visitor_purpose_required": {"zh_CN": "请填写来访事由和被访人", "en": "Type the purpose and the person visited"},
    "override_not_needed": {"zh_CN": "该学生已在校或已离校，无需放行", "en": "That child is already on site or has left; nothing to admit"},
    "pickup_expired": {"zh_CN": "该接送请求已失效，请重新刷卡", "en": "That pickup request has lapsed; tap again"},
    "action_invalid": {"zh_CN": "输入无法记录，请检查后重试", "en": "This input cannot be recorded; check it and try again"},
    "visitor_not_on_site": {"zh_CN": "该访客不在校内", "en": "That visitor is not on site"},
    # --- the console ---
    "app_title": {"zh_CN": "课后服务门岗 · {school} · {kiosk}", "en": "After-school gate · {school} · {kiosk}"},
    "banner_idle": {"zh_CN": "请刷卡", "en": "Tap a card"},
    "count_expected": {"zh_CN": "应到", "en": "Expected"},
    "count_on_site": {"zh_CN": "在校", "en": "On site"},
    "count_gone": {"zh_CN": "已离校", "en": "Gone"},
    "count_absent": {"zh_CN": "缺勤", "en": "Absent"},
    "recent": {"zh_CN": "最近记录", "en": "Recent"},
    "online": {"zh_CN": "在线", "en": "online"},
    "offline": {"zh_CN": "离线", "en": "OFFLINE"},
    "footer_sync": {"zh_CN": "{state} · 待上传 {queue} · 名单 v{version} · {age}", "en": "{state} · queue {queue} · roster v{version} · {age}"},
    "roster_none": {"zh_CN": "尚无名单", "en": "no roster yet"},
    "roster_age": {"zh_CN": "{minutes}分钟前", "en": "{minutes} min old"},
    "roster_age_h": {"zh_CN": "{hours}小时前", "en": "{hours} h old"},
    "photo_none": {"zh_CN": "无照片", "en": "no photo"},
    "phone": {"zh_CN": "电话", "en": "Phone"},
    "confirm_title": {"zh_CN": "核对接送", "en": "Verify the pickup"},
    "confirm_keys": {"zh_CN": "Enter 确认放行 · Esc 拒绝", "en": "Enter confirms · Esc refuses"},
    "override_title": {"zh_CN": "人工放行", "en": "Admit by the guard"},
    "override_prompt": {"zh_CN": "放行原因（Enter 确认 · Esc 取消）", "en": "Reason (Enter admits · Esc cancels)"},
    "search_title": {"zh_CN": "查找学生（姓名、班级或学号）", "en": "Find a student (name, class or student number)"},
    "search_hint": {"zh_CN": "输入后用方向键选择学生；Enter 查看可接送人；Esc 返回", "en": "Type, then arrows to pick a child; Enter shows who may take them; Esc goes back"},
    "authorised_title": {"zh_CN": "{name}（{class_name}）的授权接送人", "en": "Who may take {name} ({class_name})"},
    "code_prompt": {"zh_CN": "或输入一次性接送码后按 Enter", "en": "Or type a one-time pickup code and press Enter"},
    "barred_list": {"zh_CN": "禁止接送：{names}", "en": "Barred: {names}"},
    "visitors_title": {"zh_CN": "门卫登记（访客）", "en": "Visitors (gate register)"},
    "visitor_name": {"zh_CN": "姓名", "en": "Name"},
    "visitor_id4": {"zh_CN": "身份证后4位", "en": "ID last 4"},
    "visitor_purpose": {"zh_CN": "事由", "en": "Purpose"},
    "visitor_visiting": {"zh_CN": "被访人", "en": "Visiting"},
    "visitor_since": {"zh_CN": "进入时间", "en": "In since"},
    "visitor_keys": {"zh_CN": "填好后 Enter 登记进入 · 在下方列表选中访客按 Enter 登记离开 · Esc 返回", "en": "Enter signs in · Enter on a visitor in the list signs them out · Esc goes back"},
    "alerts_title": {"zh_CN": "提醒", "en": "Alerts"},
    "alerts_new": {"zh_CN": "新提醒 {count} 条，按 a 查看", "en": "{count} new alerts: press a to see them"},
    "alerts_none": {"zh_CN": "暂无提醒", "en": "No alerts"},
    "rollcall_title": {"zh_CN": "紧急点名：当前在校学生 {count} 人", "en": "Roll-call: {count} children on site now"},
    "rollcall_no_session": {"zh_CN": "人工放行（无课程）", "en": "Admitted without a session"},
    "help_title": {"zh_CN": "按键说明", "en": "Keys"},
    "back": {"zh_CN": "返回", "en": "Back"},
    "key_search": {"zh_CN": "查找学生 / 无卡接送 / 接送码", "en": "Find a student / no-card pickup / code"},
    "key_visitors": {"zh_CN": "访客登记", "en": "Visitors"},
    "key_alerts": {"zh_CN": "提醒", "en": "Alerts"},
    "key_rollcall": {"zh_CN": "紧急点名", "en": "Roll-call"},
    "key_override": {"zh_CN": "人工放行上一位被拒学生", "en": "Admit the last refused child"},
    "key_help": {"zh_CN": "按键说明", "en": "Help"},
    "key_quit": {"zh_CN": "退出", "en": "Quit"},
    "key_confirm": {"zh_CN": "确认放行", "en": "Confirm"},
    "key_refuse": {"zh_CN": "拒绝", "en": "Refuse"},
    "key_demo": {
        "zh_CN": "演示：1–9 学生刷卡 · g 上一位学生的家长刷卡 · b 被禁止接送的家长和孩子刷卡 · t 教师卡 · u 陌生卡",
        "en": "Demo: 1–9 tap a child · g a guardian of the last child · b the barred guardian, then their child · t a teacher · u an unknown card",
    },
    "key_wedge": {"zh_CN": "键盘式读卡器：在任何界面快速输入卡号并回车即为刷卡", "en": "Keyboard-wedge reader: a fast burst of digits and Enter anywhere is a tap"},
    # --- the command line ---
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
