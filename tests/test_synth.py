"""orgsync.synth: a realistic, deterministic synthetic org and its week of churn."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from connectors.csvfile import CsvConnector
from orgsync.feishu.schema import PROFILE_NAMES
from orgsync.model import EmployeeType, Snapshot, Status
from orgsync.source import SourceData
from orgsync.synth import generate_org, next_week, with_profile, write_csv
from orgsync.validate import validate

REPO = Path(__file__).parent.parent


def depth(org: Snapshot, key: str) -> int:
    n, k = 0, key
    while (parent := org.departments[k].parent_key) is not None:
        n, k = n + 1, parent
    return n + 1


class TestGenerateOrg:
    def test_default_shape(self) -> None:
        """The default org has 320 people, 34 departments, 5 levels and validates cleanly."""
        org = generate_org()
        assert (len(org.employees), len(org.departments)) == (320, 34)
        assert max(depth(org, k) for k in org.departments) == 5
        assert validate(SourceData(org)).issues == []

    def test_deterministic_by_seed(self) -> None:
        """The same seed gives the same org; another seed a different one."""
        assert generate_org(seed=3) == generate_org(seed=3)
        assert generate_org(seed=3) != generate_org(seed=4)

    def test_identities_are_unique_and_realistic(self) -> None:
        """Mobiles are unique +86 numbers; emails unique ASCII @example.com; names Chinese."""
        people = list(generate_org().employees.values())
        mobiles = [e.mobile for e in people]
        emails = [e.email for e in people]
        assert len(set(mobiles)) == len(people)
        assert len(set(emails)) == len(people)
        assert all(m and m.startswith("+861") and len(m) == 14 for m in mobiles)
        assert all(e and e.isascii() and e.endswith("@example.com") for e in emails)
        assert all("\u4e00" <= p.name[0] <= "\u9fff" and p.en_name and p.job_title and p.city
                   for p in people)

    def test_departments_have_unique_sibling_names_and_orders(self) -> None:
        """Names and orders never repeat among siblings, and no name has a '/'."""
        org = generate_org(employees=2000, departments=300, levels=6)
        siblings = Counter((d.parent_key, d.name) for d in org.departments.values())
        orders = Counter((d.parent_key, d.order) for d in org.departments.values())
        assert max(siblings.values()) == 1
        assert max(orders.values()) == 1
        assert not any("/" in d.name for d in org.departments.values())
        assert all(d.en_name for d in org.departments.values())

    def test_leaders_and_managers(self) -> None:
        """Leaders belong to their department; members report to it; leaders to the parent's."""
        org = generate_org()
        for d in org.departments.values():
            assert d.leader_key is not None
            leader = org.employees[d.leader_key]
            assert leader.department_keys[0] == d.key
            parent_leader = (org.departments[d.parent_key].leader_key
                             if d.parent_key else None)
            assert leader.manager_key == parent_leader
        for e in org.employees.values():
            head = org.departments[e.department_keys[0]].leader_key
            if head != e.key:
                assert e.manager_key == head

    def test_mix_of_types_and_multi_department_people(self) -> None:
        """Mostly regular employees, some interns and contractors, a few in two departments."""
        org = generate_org(employees=3000, departments=120)
        types = Counter(e.employee_type for e in org.employees.values())
        assert types[EmployeeType.REGULAR] > 0.8 * 3000
        assert types[EmployeeType.INTERN] > 0
        assert types[EmployeeType.CONTRACTOR] > 0
        multi = sum(len(e.department_keys) == 2 for e in org.employees.values())
        assert 0.01 * 3000 < multi < 0.06 * 3000

    def test_join_date_is_the_newest(self) -> None:
        """Nobody joins after join_date, and the newest hires join on it."""
        org = generate_org()
        dates = [e.join_date for e in org.employees.values() if e.join_date]
        assert max(dates).isoformat() == "2026-01-05"

    def test_large_org_shape(self) -> None:
        """100k people in 5k departments, 6 levels, validate cleanly (speed: see orgsync.bench)."""
        org = generate_org(employees=100_000, departments=5000, levels=6)
        assert len(org.departments) == 5000
        assert max(depth(org, k) for k in org.departments) == 6
        assert validate(SourceData(org)).issues == []


class TestNextWeek:
    def test_churn(self) -> None:
        """Joiners, leavers (terminated and absent), a rename, a move, team moves, a promotion."""
        org = generate_org()
        week = next_week(org)
        assert validate(SourceData(week)).issues == []
        joiners = week.employees.keys() - org.employees.keys()
        absent = org.employees.keys() - week.employees.keys()
        terminated = [e for e in week.employees.values() if e.status is Status.TERMINATED]
        assert len(joiners) >= 2
        assert absent
        assert terminated
        assert all(str(week.employees[k].join_date) == "2026-01-12" for k in joiners)
        renamed = [k for k, d in org.departments.items() if week.departments[k].name != d.name]
        moved = [k for k, d in org.departments.items()
                 if week.departments[k].parent_key != d.parent_key]
        new_leader = [k for k, d in org.departments.items()
                      if week.departments[k].leader_key != d.leader_key]
        assert (len(renamed), len(moved), len(new_leader)) == (1, 1, 1)
        same = org.employees.keys() & week.employees.keys()
        team_moves = [k for k in same if week.employees[k].department_keys[0]
                      != org.employees[k].department_keys[0]]
        converted = [k for k in same if org.employees[k].employee_type is EmployeeType.INTERN
                     and week.employees[k].employee_type is EmployeeType.REGULAR]
        assert len(team_moves) >= 2
        assert len(converted) == 1
        assert sum(week.employees[k].manager_key != org.employees[k].manager_key
                   for k in same) >= 3

    def test_deterministic_and_pure(self) -> None:
        """Same seed → same week; the input org is not modified."""
        org = generate_org()
        before = generate_org()
        assert next_week(org, seed=8) == next_week(org, seed=8)
        assert org == before


class TestFiles:
    def test_write_csv_is_deterministic(self, tmp_path: Path) -> None:
        """Two writes of the same org are byte-identical, sorted by key."""
        org = generate_org()
        a = write_csv(org, tmp_path / "a")
        b = write_csv(org, tmp_path / "b")
        assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
        ids = [line.split(",")[0] for line in a[1].read_text("utf-8").splitlines()[1:]]
        assert ids == sorted(ids)

    def test_committed_demo_files_match_the_generator(self, tmp_path: Path) -> None:
        """config/demo/week1 and week2 are exactly what generate_org/next_week write."""
        org = generate_org()
        for week, snapshot in (("week1", org), ("week2", next_week(org))):
            written = write_csv(snapshot, tmp_path / week)
            for path in written:
                committed = REPO / "config" / "demo" / week / path.name
                assert committed.read_bytes() == path.read_bytes(), (
                    f"{committed} is stale: regenerate it with orgsync.synth.write_csv")


def test_profiled_org_round_trips_through_csv_and_validates(tmp_path: Path) -> None:
    """with_profile fills every profile field; the CSV it writes reads back as the same
    records, and the org validates without an issue (no dotted-line cycle, nobody their own)."""
    org = with_profile(generate_org(employees=400, departments=30, levels=4), desk_phone=True)
    people = org.employees.values()
    # the built-in types suffice; the desk phone is a custom attribute (custom.工位电话);
    # avatars would need picture files
    filled = set(PROFILE_NAMES) - {"custom_employee_type", "avatar"}
    assert {f for e in people for f in e.profile} == filled
    write_csv(org, tmp_path)
    raw = CsvConnector(departments=tmp_path / "departments.csv",
                       employees=tmp_path / "employees.csv").read()
    assert raw.snapshot.employees == org.employees
    assert raw.profile_fields == filled
    assert validate(raw).issues == []
