"""A deterministic synthetic org for the demo, the tests and the benchmarks.

:func:`generate_org` builds a realistic Chinese company: department names such as
研发中心 / 平台部 / 基础架构组 with English names, people with Chinese and English
names, unique ``+86`` mobiles and ``@example.com`` emails, job titles, cities,
employee types, department leaders and a manager chain without cycles.
:func:`next_week` applies one week of HR churn to it, and :func:`write_csv`
writes either in orgsync's native CSV format.

Same arguments → same org, byte for byte. Linear time: 100k employees in 5k
departments take a couple of seconds.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import random
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from orgsync.feishu.schema import PROFILE
from orgsync.model import CUSTOM_ATTRS, Department, Employee, EmployeeType, Snapshot, Status

DEPARTMENT_COLUMNS = ("department_id", "name", "en_name", "parent_id", "leader_id", "order")
EMPLOYEE_COLUMNS = (
    "employee_id", "employee_no", "name", "en_name", "email", "mobile", "department_ids",
    "manager_id", "job_title", "employee_type", "join_date", "city", "status",
)

# Top-level departments: (Chinese, English, family). The family picks the names of
# the departments below and the job titles of the people inside.
_TOP = [
    ("研发中心", "R&D Center", "tech"),
    ("产品中心", "Product Center", "product"),
    ("销售中心", "Sales Center", "sales"),
    ("市场中心", "Marketing Center", "marketing"),
    ("运营中心", "Operations Center", "ops"),
    ("人力资源中心", "Human Resources Center", "hr"),
    ("财务中心", "Finance Center", "finance"),
    ("数据中心", "Data Center", "tech"),
    ("客户成功中心", "Customer Success Center", "sales"),
    ("供应链中心", "Supply Chain Center", "ops"),
    ("行政中心", "Administration Center", "admin"),
    ("法务中心", "Legal Center", "admin"),
    ("国际业务中心", "International Business Center", "sales"),
    ("战略发展中心", "Strategy Center", "product"),
]

_UNITS: dict[str, list[tuple[str, str]]] = {
    "tech": [
        ("平台", "Platform"), ("基础架构", "Infrastructure"), ("存储", "Storage"),
        ("网络", "Network"), ("中间件", "Middleware"), ("数据库", "Database"),
        ("移动开发", "Mobile"), ("前端", "Frontend"), ("后端", "Backend"), ("测试", "QA"),
        ("安全", "Security"), ("算法", "Algorithms"), ("推荐", "Recommendation"),
        ("搜索", "Search"), ("支付", "Payments"), ("运维", "SRE"), ("数据平台", "Data Platform"),
        ("机器学习", "Machine Learning"), ("客户端", "Client"),
        ("效能", "Engineering Productivity"),
    ],
    "product": [
        ("产品规划", "Product Planning"), ("用户体验", "User Experience"),
        ("交互设计", "Interaction Design"), ("视觉设计", "Visual Design"),
        ("用户研究", "User Research"), ("商业化产品", "Monetization"), ("增长产品", "Growth"),
        ("企业产品", "Enterprise Product"), ("战略研究", "Strategy Research"),
        ("项目管理", "Program Management"),
    ],
    "sales": [
        ("华北销售", "North China Sales"), ("华东销售", "East China Sales"),
        ("华南销售", "South China Sales"), ("西南销售", "Southwest Sales"),
        ("大客户", "Key Accounts"), ("渠道", "Channel"), ("售前", "Presales"),
        ("客户成功", "Customer Success"), ("商务", "Business Development"),
        ("海外销售", "Overseas Sales"), ("销售运营", "Sales Operations"),
    ],
    "marketing": [
        ("品牌", "Brand"), ("公关", "Public Relations"), ("内容", "Content"),
        ("活动", "Events"), ("数字营销", "Digital Marketing"), ("市场研究", "Market Research"),
        ("社区", "Community"),
    ],
    "ops": [
        ("用户运营", "User Operations"), ("内容运营", "Content Operations"),
        ("采购", "Procurement"),
        ("物流", "Logistics"), ("仓储", "Warehousing"), ("客服", "Customer Service"),
        ("质量", "Quality"), ("商家运营", "Merchant Operations"),
    ],
    "hr": [
        ("招聘", "Recruiting"), ("培训发展", "Learning & Development"),
        ("薪酬福利", "Compensation & Benefits"), ("员工关系", "Employee Relations"),
        ("组织发展", "Organization Development"), ("HRBP", "HRBP"),
    ],
    "finance": [
        ("会计", "Accounting"), ("税务", "Tax"), ("资金", "Treasury"), ("预算", "Budgeting"),
        ("审计", "Audit"), ("财务分析", "Financial Analysis"),
    ],
    "admin": [
        ("行政", "Administration"), ("法务", "Legal"), ("合规", "Compliance"),
        ("IT支持", "IT Support"), ("安全保卫", "Facilities Security"), ("办公室", "Office"),
    ],
}

# The suffix of a department's name by level below the top (部 = department, 组 = team).
_SUFFIX = [("部", "Department"), ("组", "Team"), ("小组", "Squad"), ("项目组", "Project Team")]

_TITLES: dict[str, list[str]] = {
    "tech": ["软件工程师", "高级软件工程师", "资深软件工程师", "测试工程师", "运维工程师",
             "算法工程师", "前端工程师", "架构师", "数据工程师"],
    "product": ["产品经理", "高级产品经理", "交互设计师", "视觉设计师", "用户研究员", "项目经理"],
    "sales": ["销售代表", "客户经理", "高级客户经理", "售前顾问", "商务经理"],
    "marketing": ["市场专员", "品牌经理", "内容编辑", "活动策划", "公关经理"],
    "ops": ["运营专员", "高级运营专员", "采购专员", "客服专员", "物流专员"],
    "hr": ["招聘专员", "HRBP", "薪酬专员", "培训专员"],
    "finance": ["会计", "财务分析师", "税务专员", "出纳"],
    "admin": ["行政专员", "法务专员", "IT支持工程师", "合规专员"],
}
_LEADER_TITLES = ["副总裁", "总监", "经理", "组长", "组长", "组长"]
_PROMOTION = {"软件工程师": "高级软件工程师", "产品经理": "高级产品经理",
              "客户经理": "高级客户经理", "运营专员": "高级运营专员"}

_SURNAMES = [
    ("王", "Wang"), ("李", "Li"), ("张", "Zhang"), ("刘", "Liu"), ("陈", "Chen"), ("杨", "Yang"),
    ("黄", "Huang"), ("赵", "Zhao"), ("吴", "Wu"), ("周", "Zhou"), ("徐", "Xu"), ("孙", "Sun"),
    ("马", "Ma"), ("朱", "Zhu"), ("胡", "Hu"), ("郭", "Guo"), ("何", "He"), ("高", "Gao"),
    ("林", "Lin"), ("罗", "Luo"), ("郑", "Zheng"), ("梁", "Liang"), ("谢", "Xie"), ("宋", "Song"),
    ("唐", "Tang"), ("许", "Xu"), ("韩", "Han"), ("冯", "Feng"), ("邓", "Deng"), ("曹", "Cao"),
    ("彭", "Peng"), ("曾", "Zeng"), ("肖", "Xiao"), ("田", "Tian"), ("董", "Dong"), ("袁", "Yuan"),
    ("潘", "Pan"), ("于", "Yu"), ("蒋", "Jiang"), ("蔡", "Cai"), ("余", "Yu"), ("杜", "Du"),
    ("叶", "Ye"), ("程", "Cheng"), ("苏", "Su"), ("魏", "Wei"), ("吕", "Lyu"), ("丁", "Ding"),
    ("任", "Ren"), ("沈", "Shen"), ("姚", "Yao"), ("卢", "Lu"), ("姜", "Jiang"), ("崔", "Cui"),
    ("钟", "Zhong"), ("谭", "Tan"), ("陆", "Lu"), ("汪", "Wang"), ("范", "Fan"), ("金", "Jin"),
    ("欧阳", "Ouyang"), ("司马", "Sima"),
]
_GIVEN = [
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("艳", "yan"),
    ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀", "xiu"),
    ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("桂", "gui"), ("英", "ying"), ("华", "hua"),
    ("建", "jian"), ("文", "wen"), ("辉", "hui"), ("玲", "ling"), ("宇", "yu"), ("浩", "hao"),
    ("晨", "chen"), ("欣", "xin"), ("怡", "yi"), ("佳", "jia"), ("子", "zi"), ("轩", "xuan"),
    ("思", "si"), ("雨", "yu"), ("博", "bo"), ("天", "tian"), ("嘉", "jia"), ("梓", "zi"),
    ("晓", "xiao"), ("婷", "ting"), ("鹏", "peng"), ("飞", "fei"), ("慧", "hui"), ("琳", "lin"),
    ("志", "zhi"), ("海", "hai"), ("峰", "feng"), ("雪", "xue"), ("梅", "mei"), ("兰", "lan"),
    ("俊", "jun"), ("凯", "kai"), ("瑞", "rui"), ("颖", "ying"), ("昊", "hao"), ("然", "ran"),
    ("诗", "shi"), ("涵", "han"), ("宁", "ning"), ("斌", "bin"), ("亮", "liang"), ("琪", "qi"),
]
_CITIES = [("北京", 30), ("上海", 25), ("深圳", 15), ("杭州", 10), ("广州", 8), ("成都", 6),
           ("武汉", 3), ("南京", 3)]
# Non-leaders only: leaders are always regular employees.
_TYPES = [(EmployeeType.REGULAR, 88), (EmployeeType.INTERN, 6), (EmployeeType.CONTRACTOR, 3),
          (EmployeeType.OUTSOURCED, 2), (EmployeeType.CONSULTANT, 1)]
_MOBILE_PREFIXES = ["130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151",
                    "152", "155", "156", "157", "158", "159", "166", "177", "180", "181", "182",
                    "183", "185", "186", "187", "188", "189", "198", "199"]
_FIRST_JOIN = date(2015, 3, 2)
_ORDER_STEP = 10


def generate_org(
    *,
    seed: int = 7,
    employees: int = 320,
    departments: int = 34,
    levels: int = 5,
    multi_department_share: float = 0.03,
    join_date: date = date(2026, 1, 5),
) -> Snapshot:
    """Build a synthetic org, deterministic in all of its arguments.

    ``levels`` is the depth of the department tree (the deepest department is
    exactly that deep when ``departments >= levels``). ``join_date`` is the
    snapshot's date: nobody joins after it, and the newest hires join on it.
    Every department with members has a leader among them; a member's manager is
    the department leader, a leader's manager the nearest ancestor's leader.
    """
    if departments < 1 or employees < 0 or levels < 1:
        raise ValueError("need departments >= 1, employees >= 0 and levels >= 1")
    rng = random.Random(seed)
    builder = _Builder(rng)
    depts = _build_tree(rng, departments, levels)
    people, leaders = _build_people(
        rng, builder, depts, employees, multi_department_share, join_date
    )
    return Snapshot(
        {d.key: dataclasses.replace(d, leader_key=leaders.get(d.key)) for d in depts},
        {e.key: e for e in people},
    )


_FAMILIES = {"tech": "研发", "product": "产品", "sales": "销售", "marketing": "市场", "ops": "运营"}
_BUILDINGS = ("A", "B", "C")
DESK_PHONE = "工位电话"
"""The custom profile field the sample company fills (a desk phone extension)."""
DEMO_CUSTOM_ATTRS: tuple[dict[str, Any], ...] = (
    # The demo tenant's attribute definitions, as GET custom_attrs lists them
    # (feishu-api-more.md §6) and the sandbox's ``custom_attrs`` knob takes them.
    {"id": "C-1", "type": "TEXT", "i18n_name": [{"locale": "zh_cn", "value": DESK_PHONE},
                                                {"locale": "en_us", "value": "Desk phone"}]},
)


def with_profile(org: Snapshot, *, desk_phone: bool = False) -> Snapshot:
    """``org`` with every profile field a source can give, derived from what the people
    already are (no random draw, so ``org`` itself is unchanged for every seed): a work
    station and a gender per person, a job level (leaders ``M1``… by depth, the others
    ``P5``–``P8``), the job family of their top department, leaders listed first in their
    department (``user_order`` 100), and, for people in two departments, the second
    department's leader as their dotted-line manager. ``desk_phone``: also a desk phone
    extension, the custom field :data:`DESK_PHONE` (needs the tenant's
    :data:`DEMO_CUSTOM_ATTRS`; a run with custom fields lists the tenant's definitions,
    so the no-change benchmark, which must make no call, goes without).
    """
    depts = org.departments
    people: dict[str, Employee] = {}
    for key, e in org.employees.items():
        h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big")
        top, depth = e.department_keys[0] if e.department_keys else None, 0
        while top is not None and depts[top].parent_key is not None:
            top, depth = depts[top].parent_key, depth + 1
        leads = top is not None and depts[e.department_keys[0]].leader_key == key
        profile: dict[str, object] = {
            "work_station": f"{_BUILDINGS[h % 3]}-{h // 3 % 12 + 1}-{h // 36 % 80 + 1:02d}",
            "gender": 1 + h // 2880 % 2,
            "job_level": f"M{depth + 1}" if leads else f"P{5 + h // 5760 % 4}",
            "job_family": _FAMILIES.get(_top_family(depts[top].name) if top else "tech", "研发"),
        }
        if desk_phone:
            profile[CUSTOM_ATTRS] = {DESK_PHONE: str(8000 + h % 2000)}
        if leads:
            profile["user_order"] = 100  # a department's leader is listed first in it
        if len(e.department_keys) > 1:
            boss = depts[e.department_keys[1]].leader_key
            if boss is not None and boss not in (key, e.manager_key):
                profile["dotted_line_manager_keys"] = [boss]
        people[key] = dataclasses.replace(e, profile=profile)
    return Snapshot(dict(depts), people)


def next_week(org: Snapshot, *, seed: int = 8) -> Snapshot:
    """One week of HR churn on ``org``, deterministic by ``seed``.

    Makes: joiners (start a week after the newest join date), leavers (some with
    status ``terminated``, some simply absent), one renamed department, one
    department moved to another parent at the same depth, people moving teams,
    one department with a new leader (so managers change), a title change and an
    intern converted to regular. Leaders never leave or move; the result
    validates as cleanly as ``org``.
    """
    rng = random.Random(seed)
    depts = dict(org.departments)
    people = dict(org.employees)
    active = sorted(k for k, e in people.items() if e.status is Status.ACTIVE)
    leaders = {d.leader_key for d in depts.values() if d.leader_key}
    touched: set[str] = set(leaders)
    churn = max(2, len(active) // 100)

    def pick(n: int, pool: list[str]) -> list[str]:
        free = [k for k in pool if k not in touched]
        chosen = sorted(rng.sample(free, min(n, len(free))))
        touched.update(chosen)
        return chosen

    depth = _depths(depts)
    _rename_one(rng, depts, depth)
    moved = _move_one(rng, depts, depth)
    if moved is not None and (lead := depts[moved].leader_key) is not None:
        people[lead] = dataclasses.replace(
            people[lead], manager_key=_nearest_leader(depts[moved].parent_key, depts)
        )
    _change_leader(rng, depts, people, touched)
    leader_of = {d.key: d.leader_key for d in depts.values()}

    staffed = sorted(k for k, d in depts.items() if d.leader_key)
    for key in pick(churn, active):
        e = people[key]
        target = rng.choice([k for k in staffed if k not in e.department_keys] or staffed)
        people[key] = dataclasses.replace(
            e, department_keys=(target, *e.department_keys[1:]), manager_key=leader_of[target]
        )
    for i, key in enumerate(pick(churn, active)):
        if i % 2:
            del people[key]
        else:
            people[key] = dataclasses.replace(people[key], status=Status.TERMINATED)
    regulars = [k for k in active if k in people
                and people[k].employee_type is EmployeeType.REGULAR and people[k].job_title]
    for key in pick(1, regulars):
        title = people[key].job_title or ""
        people[key] = dataclasses.replace(
            people[key], job_title=_PROMOTION.get(title, "资深" + title.removeprefix("高级"))
        )
    interns = [k for k in active if k in people and people[k].employee_type is EmployeeType.INTERN]
    for key in pick(1, interns):
        regular_title = (people[key].job_title or "").removesuffix("实习生") or None
        people[key] = dataclasses.replace(
            people[key], employee_type=EmployeeType.REGULAR, job_title=regular_title
        )

    builder = _Builder(rng, taken=people.values())
    newest = max((e.join_date for e in people.values() if e.join_date), default=date(2026, 1, 5))
    width = max(len(k) - 1 for k in org.employees) if org.employees else 5
    next_no = 1 + max((int(k[1:]) for k in org.employees if k[1:].isdigit()), default=0)
    for n in range(churn if staffed else 0):
        target = rng.choice(staffed)
        number = next_no + n
        people[f"E{number:0{width}d}"] = builder.person(
            key=f"E{number:0{width}d}", number=number, departments=(target,),
            manager=leader_of[target], family=_family_of(target, depts),
            joined=newest + timedelta(days=7), leader_depth=None,
        )
    return Snapshot(depts, people)


def write_csv(snapshot: Snapshot, directory: Path) -> tuple[Path, Path]:
    """Write ``departments.csv`` and ``employees.csv`` in the native format.

    Deterministic: rows sorted by key, UTF-8 without BOM, ``\\n`` line endings.
    Returns the two paths.
    """
    directory.mkdir(parents=True, exist_ok=True)
    dept_path = directory / "departments.csv"
    emp_path = directory / "employees.csv"
    with dept_path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(DEPARTMENT_COLUMNS)
        for key in sorted(snapshot.departments):
            d = snapshot.departments[key]
            w.writerow([d.key, d.name, d.en_name or "", d.parent_key or "", d.leader_key or "",
                        "" if d.order is None else d.order])
    # The profile columns any record has a value for (see with_profile); then, last, one
    # custom.<name> column per custom attribute any record has.
    given = {f for e in snapshot.employees.values() for f in e.profile}
    profile = [f for f in PROFILE if f.name in given and f.name != CUSTOM_ATTRS]
    custom = sorted({n for e in snapshot.employees.values()
                     for n in _attrs(e.profile.get(CUSTOM_ATTRS))})
    with emp_path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([*EMPLOYEE_COLUMNS, *(p.column or p.name for p in profile),
                    *(f"custom.{n}" for n in custom)])
        for key in sorted(snapshot.employees):
            e = snapshot.employees[key]
            w.writerow([
                e.key, e.employee_no or "", e.name, e.en_name or "", e.email or "",
                e.mobile or "", ";".join(e.department_keys), e.manager_key or "",
                e.job_title or "", e.employee_type.name.lower(),
                e.join_date.isoformat() if e.join_date else "", e.city or "", str(e.status),
                *(_cell(e.profile.get(p.name)) for p in profile),
                *(_cell(_attrs(e.profile.get(CUSTOM_ATTRS)).get(n)) for n in custom),
            ])
    return dept_path, emp_path


def _attrs(value: object) -> dict[str, object]:
    """A record's custom attributes (name → value); none when it has no such field."""
    return dict(value) if isinstance(value, dict) else {}


def _cell(value: object) -> str:
    """A profile value as the CSV connector reads it back (keys ``;``-separated; a gender
    as its number)."""
    if value is None:
        return ""
    return ";".join(map(str, value)) if isinstance(value, list) else str(value)


# --- departments ---------------------------------------------------------------------------


def _build_tree(rng: random.Random, count: int, levels: int) -> list[Department]:
    """``count`` departments, ``levels`` deep, names unique among siblings."""
    width = max(4, len(str(count)))
    top_count = count if levels == 1 else max(1, min(count, len(_TOP), round(math.sqrt(count) * 0.9)))
    parents: list[str | None] = [None] * top_count
    depth_of: dict[str, int] = {}
    # One spine reaches the full depth; the rest hang from random shallower departments.
    spine = min(levels, count - top_count + 1)
    keys = [f"D{i:0{width}d}" for i in range(1, count + 1)]
    for i in range(top_count):
        depth_of[keys[i]] = 1
    eligible = [k for k in keys[:top_count] if levels > 1]
    for i in range(top_count, count):
        if i < top_count + spine - 1:
            up = keys[0] if i == top_count else keys[i - 1]
        else:
            up = rng.choice(eligible)
        parents.append(up)
        depth_of[keys[i]] = depth_of[up] + 1
        if depth_of[keys[i]] < levels:
            eligible.append(keys[i])

    family: dict[str, str] = {}
    siblings: dict[str | None, set[str]] = defaultdict(set)
    next_order: dict[str | None, int] = defaultdict(int)
    out: list[Department] = []
    for key, parent in zip(keys, parents, strict=True):
        depth = depth_of[key]
        if parent is None:
            zh, en, fam = _TOP[len(out) % len(_TOP)]
            if len(out) >= len(_TOP):
                zh, en = f"{zh}{len(out) // len(_TOP) + 1}", f"{en} {len(out) // len(_TOP) + 1}"
        else:
            fam = family[parent]
            zh, en = _unit_name(rng, fam, depth, siblings[parent])
        family[key] = fam
        siblings[parent].add(zh)
        next_order[parent] += _ORDER_STEP
        out.append(Department(key=key, name=zh, parent_key=parent, order=next_order[parent],
                              en_name=en))
    return out


def _unit_name(rng: random.Random, family: str, depth: int, taken: set[str]) -> tuple[str, str]:
    units = _UNITS[family]
    zh_suffix, en_suffix = _SUFFIX[min(depth - 2, len(_SUFFIX) - 1)]
    start = rng.randrange(len(units))
    for n in range(len(units) * 1000):
        zh, en = units[(start + n) % len(units)]
        rnd = n // len(units)
        name = f"{zh}{rnd + 1}{zh_suffix}" if rnd else f"{zh}{zh_suffix}"
        if name not in taken:
            return name, f"{en} {en_suffix} {rnd + 1}" if rnd else f"{en} {en_suffix}"
    raise AssertionError("unreachable: ran out of department names")  # pragma: no cover


def _depths(depts: dict[str, Department]) -> dict[str, int]:
    depth: dict[str, int] = {}
    for key in depts:
        chain = []
        k: str | None = key
        while k is not None and k not in depth:
            chain.append(k)
            k = depts[k].parent_key
        base = depth[k] if k is not None else 0
        for c in reversed(chain):
            base += 1
            depth[c] = base
    return depth


def _family_of(key: str, depts: dict[str, Department]) -> str:
    k = key
    while (parent := depts[k].parent_key) is not None:
        k = parent
    top = depts[k].name
    for zh, _, fam in _TOP:
        if top.startswith(zh):
            return fam
    return "tech"


def _rename_one(rng: random.Random, depts: dict[str, Department], depth: dict[str, int]) -> None:
    candidates = sorted(k for k, d in depts.items() if d.parent_key is not None)
    if not candidates:
        return
    key = rng.choice(candidates)
    d = depts[key]
    taken = {s.name for s in depts.values() if s.parent_key == d.parent_key}
    family = _family_of(key, depts)
    zh, en = _unit_name(rng, family, depth[key], taken)
    depts[key] = dataclasses.replace(d, name=zh, en_name=en)


def _move_one(rng: random.Random, depts: dict[str, Department],
              depth: dict[str, int]) -> str | None:
    """Move one department under another parent at the same depth; return its key.

    A team preferably moves within its own line of business (same top-level
    family); a few dozen candidates are tried, so this stays fast on 5k departments.
    """
    family = {k: _family_of(k, depts) for k in depts}
    by_depth: dict[int, list[str]] = defaultdict(list)
    for k in sorted(depts):
        by_depth[depth[k]].append(k)
    candidates = sorted(k for k, d in depts.items() if d.parent_key is not None)
    rng.shuffle(candidates)
    for same_family in (True, False):
        for key in candidates[:50]:
            d = depts[key]
            parent = d.parent_key
            assert parent is not None
            targets = [k for k in by_depth[depth[parent]]
                       if k != parent and (family[k] == family[key] or not same_family)
                       and not _is_under(k, key, depts)]
            if not targets:
                continue
            target = rng.choice(targets)
            kids = [s for s in depts.values() if s.parent_key == target]
            if any(s.name == d.name for s in kids):
                continue
            order = max((s.order or 0 for s in kids), default=0) + _ORDER_STEP
            depts[key] = dataclasses.replace(d, parent_key=target, order=order)
            return key
    return None


def _nearest_leader(key: str | None, depts: dict[str, Department]) -> str | None:
    while key is not None:
        if (lead := depts[key].leader_key) is not None:
            return lead
        key = depts[key].parent_key
    return None


def _is_under(key: str, ancestor: str, depts: dict[str, Department]) -> bool:
    k: str | None = key
    while k is not None:
        if k == ancestor:
            return True
        k = depts[k].parent_key
    return False


def _change_leader(rng: random.Random, depts: dict[str, Department],
                   people: dict[str, Employee], touched: set[str]) -> None:
    """Give one department a new leader from its members; rewire the managers."""
    members: dict[str, list[str]] = defaultdict(list)
    for k, e in people.items():
        if e.status is Status.ACTIVE and k not in touched:
            members[e.department_keys[0]].append(k)
    candidates = sorted(k for k, d in depts.items() if d.leader_key and members.get(k))
    if not candidates:
        return
    key = rng.choice(candidates)
    d = depts[key]
    old = d.leader_key
    new = rng.choice(sorted(members[key]))
    touched.add(new)
    depts[key] = dataclasses.replace(d, leader_key=new)
    assert old is not None
    before = people[old]
    people[new] = dataclasses.replace(
        people[new], manager_key=before.manager_key, job_title=before.job_title,
        employee_type=EmployeeType.REGULAR,
    )
    people[old] = dataclasses.replace(
        before, manager_key=new, job_title=rng.choice(_TITLES[_family_of(key, depts)])
    )
    for k, e in people.items():
        if k not in (new, old) and e.manager_key == old:
            people[k] = dataclasses.replace(e, manager_key=new)


# --- people --------------------------------------------------------------------------------


class _Builder:
    """Makes people; emails and mobiles never repeat one already made or taken."""

    def __init__(self, rng: random.Random, taken: Iterable[Employee] = ()) -> None:
        self.rng = rng
        self.emails: set[str] = set()
        self.mobiles: set[str] = set()
        for e in taken:
            if e.email:
                self.emails.add(e.email)
            if e.mobile:
                self.mobiles.add(e.mobile)
        self.cities = [c for c, _ in _CITIES]
        self.city_weights = [w for _, w in _CITIES]
        self.types = [t for t, _ in _TYPES]
        self.type_weights = [w for _, w in _TYPES]

    def person(self, *, key: str, number: int, departments: tuple[str, ...],
               manager: str | None, family: str, joined: date,
               leader_depth: int | None) -> Employee:
        rng = self.rng
        surname, surname_en = rng.choice(_SURNAMES)
        given = [rng.choice(_GIVEN) for _ in range(1 if rng.random() < 0.3 else 2)]
        name = surname + "".join(g for g, _ in given)
        given_en = "".join(p for _, p in given)
        en_name = f"{given_en.capitalize()} {surname_en}"
        base = f"{given_en}.{surname_en.lower()}"
        email = f"{base}@example.com"
        n = 1
        while email in self.emails:
            n += 1
            email = f"{base}{n}@example.com"
        self.emails.add(email)
        while True:
            mobile = f"+86{rng.choice(_MOBILE_PREFIXES)}{rng.randrange(10**8):08d}"
            if mobile not in self.mobiles:
                break
        self.mobiles.add(mobile)
        if leader_depth is None:
            etype = rng.choices(self.types, self.type_weights)[0]
            title = rng.choice(_TITLES[family])
            if etype is EmployeeType.INTERN:
                title = title.removeprefix("高级").removeprefix("资深") + "实习生"
        else:
            etype = EmployeeType.REGULAR
            title = _LEADER_TITLES[min(leader_depth, len(_LEADER_TITLES)) - 1]
        return Employee(
            key=key, name=name, department_keys=departments, en_name=en_name, email=email,
            mobile=mobile, manager_key=manager, job_title=title, employee_no=f"{number:08d}",
            employee_type=etype, join_date=joined,
            city=rng.choices(self.cities, self.city_weights)[0],
        )


def _build_people(rng: random.Random, builder: _Builder, depts: list[Department],
                  count: int, multi_share: float,
                  join_date: date) -> tuple[list[Employee], dict[str, str]]:
    """``count`` people, and each staffed department's leader (its first member)."""
    by_key = {d.key: d for d in depts}
    family: dict[str, str] = {}
    depth: dict[str, int] = {}
    for d in depts:  # parents come before children in ``depts``
        family[d.key] = family[d.parent_key] if d.parent_key else _top_family(d.name)
        depth[d.key] = depth[d.parent_key] + 1 if d.parent_key else 1

    # Every department gets one person (its leader) while people last; the rest go
    # mostly to leaf teams, as in real companies.
    has_child = {d.parent_key for d in depts if d.parent_key}
    weights = [1 if d.key in has_child else 4 for d in depts]
    primary = [d.key for d in depts[:count]]
    if count > len(depts):
        primary += rng.choices([d.key for d in depts], weights, k=count - len(depts))

    width = max(5, len(str(count)))
    keys = [f"E{i:0{width}d}" for i in range(1, count + 1)]
    leader: dict[str, str] = {}
    for key, dk in zip(keys, primary, strict=False):
        leader.setdefault(dk, key)

    def manager_of(dk: str | None, skip: str) -> str | None:
        while dk is not None:
            m = leader.get(dk)
            if m is not None and m != skip:
                return m
            dk = by_key[dk].parent_key
        return None

    span = (join_date - _FIRST_JOIN).days
    recent = max(1, count // 50)
    dept_keys = [d.key for d in depts]
    # An exact share (at least one person when the share is positive), not a coin per
    # person: small orgs used in tests always have someone in two departments.
    members = [k for k, dk in zip(keys, primary, strict=False) if leader[dk] != k]
    wanted = min(len(members), max(1, round(multi_share * count))) if multi_share > 0 else 0
    multi = set(rng.sample(members, wanted)) if len(depts) > 1 else set()
    people: list[Employee] = []
    for i, (key, dk) in enumerate(zip(keys, primary, strict=True)):
        is_leader = leader[dk] == key
        manager = manager_of(by_key[dk].parent_key, key) if is_leader else leader[dk]
        departments: tuple[str, ...] = (dk,)
        if key in multi:
            other = rng.choice(dept_keys)
            while other == dk:
                other = rng.choice(dept_keys)
            departments = (dk, other)
        joined = join_date if i >= count - recent else _FIRST_JOIN + timedelta(
            days=rng.randrange(span) if span > 0 else 0)
        people.append(builder.person(
            key=key, number=i + 1, departments=departments, manager=manager, family=family[dk],
            joined=joined, leader_depth=depth[dk] if is_leader else None,
        ))
    return people, leader


def _top_family(name: str) -> str:
    for zh, _, fam in _TOP:
        if name.startswith(zh):
            return fam
    return "tech"
