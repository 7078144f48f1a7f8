"""The diff engine: what it plans, in which order, and what it refuses to touch."""

from __future__ import annotations

from orgsync.diff import DiffPolicy, diff
from orgsync.model import Department, Employee, Snapshot, Status
from orgsync.plan import OpKind, Plan, op_id
from orgsync.source import SourceData
from orgsync.state import DirectoryState, MirrorDepartment, MirrorUser


def dept(key: str, name: str, parent: str | None = None, leader: str | None = None,
         order: int | None = None) -> Department:
    return Department(key=key, name=name, parent_key=parent, leader_key=leader, order=order)


def emp(key: str, depts: tuple[str, ...], manager: str | None = None, **kw: object) -> Employee:
    n = int("".join(c for c in key if c.isdigit()) or "0")
    base: dict[str, object] = {"name": f"Person {key}", "email": f"{key.lower()}@example.com",
                               "mobile": f"+861380000{n:04d}"}
    base.update(kw)
    return Employee(key=key, department_keys=depts, manager_key=manager, **base)  # type: ignore[arg-type]


def state_of(snap: Snapshot) -> DirectoryState:
    """What the mirror would hold after applying ``snap`` perfectly."""
    s = DirectoryState()
    for k, d in snap.departments.items():
        s.departments[k] = MirrorDepartment(d, k)
    for k, e in snap.employees.items():
        if e.status is Status.ACTIVE:
            s.users[k] = MirrorUser(e, k)
    return s


def kinds(plan: Plan) -> list[tuple[str, str]]:
    return [(op.kind.value, op.key) for op in plan.operations]


ORG = Snapshot.of(
    [dept("D1", "研发中心"), dept("D2", "平台部", "D1", leader="E1"), dept("D3", "销售部")],
    [emp("E1", ("D2",)), emp("E2", ("D2",), manager="E1"), emp("E3", ("D3", "D2"), manager="E1")],
)


class TestCreate:
    def test_initial_sync_creates_parents_before_children(self) -> None:
        """Into an empty directory, departments come before their children and before users,
        and a manager before their reports (whose create names them)."""
        plan = diff(SourceData(ORG), DirectoryState())
        order = [op.op_id for op in plan.operations]
        assert order.index(op_id(OpKind.DEPT_CREATE, "D1")) < order.index(
            op_id(OpKind.DEPT_CREATE, "D2"))
        create_e2 = plan.operations[order.index(op_id(OpKind.USER_CREATE, "E2"))]
        assert create_e2.depends_on == (op_id(OpKind.DEPT_CREATE, "D2"),
                                        op_id(OpKind.USER_CREATE, "E1"))
        assert order.index(op_id(OpKind.USER_CREATE, "E1")) < order.index(create_e2.op_id)
        assert create_e2.payload["department_ids"] == ["D2"]
        assert create_e2.payload["leader_user_id"] == "E1"
        assert create_e2.mirror is not None
        assert create_e2.mirror["manager_key"] == "E1"

    def test_manager_links_of_new_people_are_inlined_in_their_creates(self) -> None:
        """An initial sync links managers in the creates: no second-pass manager patch.
        A department's leader is still linked after the leader's create."""
        plan = diff(SourceData(ORG), DirectoryState())
        by_id = {op.op_id: op for op in plan.operations}
        assert [op for op in plan.operations if op.kind is OpKind.USER_SET_MANAGER] == []
        assert "leader_user_id" not in by_id[op_id(OpKind.USER_CREATE, "E1")].payload
        assert by_id[op_id(OpKind.USER_CREATE, "E3")].payload["leader_user_id"] == "E1"
        leader = by_id[op_id(OpKind.DEPT_SET_LEADER, "D2")]
        assert op_id(OpKind.USER_CREATE, "E1") in leader.depends_on
        assert plan.summary() == {"department.create": 3, "department.set_leader": 1,
                                  "user.create": 3}

    def test_create_bodies_replay_after_the_manager_was_created(self) -> None:
        """A create planned again after a crash that left the manager created (not the
        report) has the same body and client_token: the manager's id does not depend on
        whether they exist yet. The create then waits for nothing but its department."""
        before = Snapshot.of(ORG.departments.values(), [ORG.employees["E1"]])
        fresh = diff(SourceData(ORG), DirectoryState())
        later = diff(SourceData(ORG), state_of(before))
        by_id = {op.op_id: op for op in later.operations}
        create = by_id[op_id(OpKind.USER_CREATE, "E2")]
        assert create.payload["leader_user_id"] == "E1"
        same = next(op for op in fresh.operations if op.op_id == create.op_id)
        assert create.payload == same.payload
        assert create.client_token == same.client_token
        assert create.depends_on == ()
        assert op_id(OpKind.USER_SET_MANAGER, "E2") not in by_id

    def test_a_manager_cycle_among_new_people_goes_to_the_second_pass(self) -> None:
        """Two new people managing each other (validation holds that back; the diff
        still plans an acyclic DAG): the smaller key is created without the link and
        linked by a second-pass patch once the other exists."""
        snap = Snapshot.of([dept("D1", "研发中心")],
                           [emp("E1", ("D1",), manager="E2"), emp("E2", ("D1",), manager="E1"),
                            emp("E3", ("D1",), manager="E2")])
        plan = diff(SourceData(snap), DirectoryState())
        by_id = {op.op_id: op for op in plan.operations}
        assert "leader_user_id" not in by_id[op_id(OpKind.USER_CREATE, "E1")].payload
        assert by_id[op_id(OpKind.USER_CREATE, "E2")].payload["leader_user_id"] == "E1"
        assert by_id[op_id(OpKind.USER_CREATE, "E3")].payload["leader_user_id"] == "E2"
        link = by_id[op_id(OpKind.USER_SET_MANAGER, "E1")]
        assert link.payload == {"leader_user_id": "E2"}
        assert set(link.depends_on) == {op_id(OpKind.USER_CREATE, "E1"),
                                        op_id(OpKind.USER_CREATE, "E2")}
        assert [op.kind for op in plan.operations].count(OpKind.USER_SET_MANAGER) == 1

    def test_an_account_adopted_by_email_is_linked_in_its_patch(self) -> None:
        """An account found by email/mobile (say one an interrupted run created) is
        patched, not created: with its manager link, after the manager's create."""
        plan = diff(SourceData(ORG), DirectoryState(), DiffPolicy(adopt={"E2": "ou_e2"}))
        by_id = {op.op_id: op for op in plan.operations}
        adopt = by_id[op_id(OpKind.USER_ADOPT, "E2")]
        assert adopt.payload["leader_user_id"] == "E1"
        assert op_id(OpKind.USER_CREATE, "E1") in adopt.depends_on
        assert op_id(OpKind.USER_SET_MANAGER, "E2") not in by_id

    def test_plan_is_deterministic(self) -> None:
        """The same inputs give the same operations and the same plan id."""
        a = diff(SourceData(ORG), DirectoryState())
        b = diff(SourceData(Snapshot.of(reversed(list(ORG.departments.values())),
                                        reversed(list(ORG.employees.values())))),
                 DirectoryState())
        assert a.plan_id == b.plan_id
        assert kinds(a) == kinds(b)


class TestUpdate:
    def test_no_changes_plans_nothing(self) -> None:
        """When Feishu already matches, the plan is empty."""
        plan = diff(SourceData(ORG), state_of(ORG))
        assert plan.empty
        assert plan.operations == ()

    def test_rename_is_one_patch_with_the_field_change(self) -> None:
        """A renamed department is one update carrying old → new."""
        new = Snapshot.of([*ORG.departments.values(), dept("D3", "大客户销售部")],
                          ORG.employees.values())
        plan = diff(SourceData(new), state_of(ORG))
        assert kinds(plan) == [("department.update", "D3")]
        op = plan.operations[0]
        assert op.payload == {"name": "大客户销售部"}
        assert [(c.field, c.old, c.new) for c in op.changes] == [("name", "销售部", "大客户销售部")]

    def test_normalised_email_and_mobile_are_no_change(self) -> None:
        """A mirror written before the connectors lower-cased emails and wrote mobiles in
        E.164 (Zhang.Wei@X.com, 13800000001) plans no update for everyone once; a real
        change to either still does."""
        old = Snapshot.of(ORG.departments.values(), [
            emp("E1", ("D2",), email="E1.Zhang@Example.COM", mobile="13800000001"),
            *(e for k, e in ORG.employees.items() if k != "E1")])
        new = Snapshot.of(ORG.departments.values(), [
            emp("E1", ("D2",), email="e1.zhang@example.com", mobile="+8613800000001"),
            *(e for k, e in ORG.employees.items() if k != "E1")])
        assert diff(SourceData(new), state_of(old)).operations == ()
        changed = Snapshot.of(ORG.departments.values(), [
            emp("E1", ("D2",), email="e1.wang@example.com", mobile="+8613800000009"),
            *(e for k, e in ORG.employees.items() if k != "E1")])
        plan = diff(SourceData(changed), state_of(old))
        assert kinds(plan) == [("user.update", "E1")]
        assert plan.operations[0].payload == {"email": "e1.wang@example.com",
                                              "mobile": "+8613800000009"}

    def test_move_is_a_patch_never_delete_and_create(self) -> None:
        """A department under a new parent is moved with one PATCH of parent_department_id."""
        new = Snapshot.of([*ORG.departments.values(), dept("D3", "销售部", "D1")],
                          ORG.employees.values())
        plan = diff(SourceData(new), state_of(ORG))
        assert kinds(plan) == [("department.move", "D3")]
        assert plan.operations[0].payload == {"parent_department_id": "D1"}

    def test_department_swap_moves_the_new_ancestor_first(self) -> None:
        """A under B becoming B under A: A moves to the top before B moves under A."""
        old = Snapshot.of([dept("A", "甲", "B"), dept("B", "乙")], [])
        new = Snapshot.of([dept("A", "甲"), dept("B", "乙", "A")], [])
        plan = diff(SourceData(new), state_of(old))
        assert kinds(plan) == [("department.move", "A"), ("department.move", "B")]
        assert plan.operations[1].depends_on == (op_id(OpKind.DEPT_MOVE, "A"),)

    def test_manager_chain_reversal_clears_before_it_links(self) -> None:
        """E2 managed by E1 becoming E1 managed by E2: E2's link is cleared first."""
        old = Snapshot.of([dept("D", "部")], [emp("E1", ("D",)), emp("E2", ("D",), manager="E1")])
        new = Snapshot.of([dept("D", "部")], [emp("E1", ("D",), manager="E2"), emp("E2", ("D",))])
        plan = diff(SourceData(new), state_of(old))
        assert kinds(plan) == [("user.set_manager", "E2"), ("user.set_manager", "E1")]
        assert plan.operations[0].payload == {"leader_user_id": ""}
        assert plan.operations[1].depends_on == (op_id(OpKind.USER_SET_MANAGER, "E2"),)

    def test_team_move_and_title_change_are_one_patch(self) -> None:
        """A person changing team and title is one move carrying both fields."""
        e3 = emp("E3", ("D2",), manager="E1", job_title="架构师")
        new = Snapshot.of(ORG.departments.values(), [*ORG.employees.values(), e3])
        plan = diff(SourceData(new), state_of(ORG))
        assert kinds(plan) == [("user.move", "E3")]
        assert plan.operations[0].payload == {"department_ids": ["D2"], "job_title": "架构师"}


class TestDelete:
    def test_leaver_is_deleted_with_handover_to_the_manager(self) -> None:
        """An absent employee is deleted; docs and calendar go to their manager."""
        new = Snapshot.of(ORG.departments.values(), [ORG.employees["E1"], ORG.employees["E3"]])
        plan = diff(SourceData(new), state_of(ORG))
        assert kinds(plan) == [("user.delete", "E2")]
        op = plan.operations[0]
        assert op.payload["docs_acceptor_user_id"] == "E1"
        assert op.reason == "absent from source"

    def test_leaver_action_freeze(self) -> None:
        """With leaver_action=freeze the leaver is frozen, not deleted."""
        new = Snapshot.of(ORG.departments.values(), [ORG.employees["E1"], ORG.employees["E3"]])
        plan = diff(SourceData(new), state_of(ORG), DiffPolicy(leaver_action="freeze"))
        assert kinds(plan) == [("user.freeze", "E2")]
        assert plan.operations[0].payload == {"is_frozen": True}

    def test_department_deleted_after_members_move_out_and_leaf_first(self) -> None:
        """Deleting a subtree: members move out first, children go before parents."""
        old = Snapshot.of([dept("A", "甲"), dept("B", "乙", "A"), dept("C", "丙")],
                          [emp("E1", ("B",)), emp("E2", ("C",))])
        new = Snapshot.of([dept("C", "丙")], [emp("E1", ("C",)), emp("E2", ("C",))])
        plan = diff(SourceData(new), state_of(old))
        order = [op.op_id for op in plan.operations]
        assert order == [op_id(OpKind.USER_MOVE, "E1"), op_id(OpKind.DEPT_DELETE, "B"),
                         op_id(OpKind.DEPT_DELETE, "A")]
        assert plan.operations[1].depends_on == (op_id(OpKind.USER_MOVE, "E1"),)
        assert plan.operations[2].depends_on == (op_id(OpKind.DEPT_DELETE, "B"),)

    def test_held_records_are_never_deleted(self) -> None:
        """An employee held back by validation is left alone, not treated as a leaver."""
        new = Snapshot.of(ORG.departments.values(), [ORG.employees["E1"], ORG.employees["E3"]])
        plan = diff(SourceData(new, held_employees={"E2"}), state_of(ORG))
        assert plan.empty

    def test_department_still_holding_a_kept_member_is_not_deleted(self) -> None:
        """A department whose held member stays is kept, with a note saying why."""
        old = Snapshot.of([dept("A", "甲"), dept("C", "丙")], [emp("E1", ("A",))])
        new = Snapshot.of([dept("C", "丙")], [])
        plan = diff(SourceData(new, held_employees={"E1"}), state_of(old))
        assert plan.empty
        assert plan.notes == ("department A not deleted: member E1 stays in it",)


class TestUniqueValues:
    def test_reused_email_waits_for_the_leaver(self) -> None:
        """A new hire taking a leaver's email is created after the leaver is deleted."""
        old = Snapshot.of([dept("D", "部")], [emp("E1", ("D",), email="a@example.com")])
        new = Snapshot.of([dept("D", "部")], [emp("E2", ("D",), email="a@example.com")])
        plan = diff(SourceData(new), state_of(old))
        assert kinds(plan) == [("user.delete", "E1"), ("user.create", "E2")]
        assert op_id(OpKind.USER_DELETE, "E1") in plan.operations[1].depends_on

    def test_sibling_order_shift_runs_in_a_safe_order(self) -> None:
        """Orders shifting down a row are patched from the end, so none clashes."""
        old = Snapshot.of([dept("A", "甲", order=1), dept("B", "乙", order=2)], [])
        new = Snapshot.of([dept("A", "甲", order=2), dept("B", "乙", order=3)], [])
        plan = diff(SourceData(new), state_of(old))
        assert kinds(plan) == [("department.update", "B"), ("department.update", "A")]


def test_plan_round_trips_through_json() -> None:
    """A plan serialises to JSON-able data that rebuilds the same operations."""
    from orgsync.plan import Operation

    plan = diff(SourceData(ORG), DirectoryState())
    ops = tuple(Operation.from_dict(op.to_dict()) for op in plan.operations)
    assert Plan(ops).plan_id == plan.plan_id
    assert plan.to_dict()["summary"] == {"department.create": 3, "department.set_leader": 1,
                                         "user.create": 3}


def test_plan_checksum_is_the_documented_canonical_form() -> None:
    """The checksum hashes one JSON array per operation (sorted object keys, no spaces;
    a user create's changes, which restate its record, as []), so a plan read back from
    its JSON file has the plan's id."""
    import hashlib
    import json

    from orgsync.plan import Operation

    plan = diff(SourceData(ORG), DirectoryState())
    restated = {"user.create", "user.adopt"}
    rows = [[d["op_id"], d["kind"], d["key"], d["feishu_id"], d["label"], d["payload"],
             [] if d["kind"] in restated else
             [[c["field"], c["old"], c["new"]] for c in d["changes"]], d["reason"],
             d["depends_on"], d["mirror"]] for d in (op.to_dict() for op in plan.operations)]
    assert any(d["kind"] == "user.create" and d["changes"] for d in
               (op.to_dict() for op in plan.operations))
    canonical = json.dumps(rows, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert plan.checksum == hashlib.sha256(canonical.encode()).hexdigest()
    loaded = json.loads(json.dumps([op.to_dict() for op in plan.operations]))
    assert Plan(tuple(Operation.from_dict(d) for d in loaded)).plan_id == plan.plan_id


def test_department_group_chat_is_asked_for_in_new_departments_only() -> None:
    """With ``department_group_chat`` a new department asks for its chat (shown as a change):
    in the create when it has no leader, else with the leader link, because Feishu makes the
    main leader the owner. Existing departments are not patched for it."""
    on = DiffPolicy(department_group_chat=True)
    plain = diff(SourceData(ORG), DirectoryState())
    chats = diff(SourceData(ORG), DirectoryState(), on)
    creates = [op for op in chats.operations if op.kind is OpKind.DEPT_CREATE]
    assert len(creates) == 3
    asking = []
    for op in creates:
        led = ORG.departments[op.key].leader_key is not None
        leader_op = next((o for o in chats.operations if o.kind is OpKind.DEPT_SET_LEADER
                          and o.key == op.key), None)
        asker = leader_op if led else op
        assert asker is not None
        asking.append(asker.kind)
        assert asker.payload["create_group_chat"] is True
        assert ("create_group_chat", None, True) in [(c.field, c.old, c.new)
                                                     for c in asker.changes]
        same = next(p for p in plain.operations if p.op_id == asker.op_id)
        assert "create_group_chat" not in same.payload
        if not led:
            assert same.client_token != op.client_token
        else:
            assert "create_group_chat" not in op.payload
    assert sorted(asking) == [OpKind.DEPT_CREATE, OpKind.DEPT_CREATE, OpKind.DEPT_SET_LEADER]
    assert chats.plan_id != plain.plan_id
    grown = Snapshot.of([*ORG.departments.values(), dept("D4", "数据部", "D1")],
                        ORG.employees.values())
    later = diff(SourceData(grown), state_of(ORG), on)
    assert kinds(later) == [("department.create", "D4")]
    assert diff(SourceData(ORG), state_of(ORG), on).empty


def test_user_update_never_carries_a_department_change() -> None:
    """A department change is always planned as a move (what transfer notes key on); a
    title change alone stays an update."""
    new = Snapshot.of(ORG.departments.values(), [
        ORG.employees["E1"], emp("E2", ("D3",), manager="E1"),
        emp("E3", ("D3", "D2"), manager="E1", job_title="工程师")])
    plan = diff(SourceData(new), state_of(ORG))
    by_key = {op.key: op for op in plan.operations if op.entity == "user"}
    assert by_key["E2"].kind is OpKind.USER_MOVE
    assert [c.field for c in by_key["E2"].changes] == ["department_keys"]
    assert by_key["E3"].kind is OpKind.USER_UPDATE
    assert "department_keys" not in [c.field for c in by_key["E3"].changes]


class TestHeldLinks:
    """A link to someone validation holds back is kept as far as Feishu allows, never
    cleared: the held person is only not updated."""

    @staticmethod
    def plan_for(source: Snapshot) -> Plan:
        from orgsync.validate import validate

        return diff(validate(SourceData(source)), state_of(ORG))

    def test_links_to_a_held_person_who_exists_in_feishu_stay(self) -> None:
        bad_e1 = emp("E1", ("D2",), mobile="12345")  # E1 leads D2 and manages E2, E3
        source = Snapshot.of(ORG.departments.values(),
                             [bad_e1, *(e for k, e in ORG.employees.items() if k != "E1")])
        assert self.plan_for(source).empty  # before: E2/E3 lost their manager, D2 its leader

    def test_a_new_hire_is_linked_to_a_held_manager_who_exists(self) -> None:
        bad_e1 = emp("E1", ("D2",), mobile="12345")
        source = Snapshot.of(ORG.departments.values(),
                             [bad_e1, *(e for k, e in ORG.employees.items() if k != "E1"),
                              emp("E7", ("D2",), manager="E1")])
        plan = self.plan_for(source)
        assert kinds(plan) == [("user.create", "E7")]
        assert plan.operations[0].payload["leader_user_id"] == "E1"

    def test_a_link_to_a_held_newcomer_is_left_as_it_is(self) -> None:
        """The held manager does not exist in Feishu yet: E3 keeps its current manager
        (no operation), the new hire E8 starts without one."""
        source = Snapshot.of(
            [*ORG.departments.values(), dept("D4", "新部门", "D1", leader="E9")],
            [*(e for k, e in ORG.employees.items() if k != "E3"),
             emp("E3", ("D3", "D2"), manager="E9"), emp("E9", ("D4",), mobile="bad"),
             emp("E8", ("D2",), manager="E9")])
        plan = self.plan_for(source)
        assert kinds(plan) == [("department.create", "D4"), ("user.create", "E8")]
        assert all(op.key != "E3" for op in plan.operations)


def test_canonical_bytes_are_the_standard_encoders_even_where_orjson_refuses() -> None:
    """orjson writes the canonical form; an int beyond 64 bits, a non-string key and a
    lone surrogate (which orjson refuses) take the standard encoder, with the same text."""
    import json

    from orgsync.plan import canonical_bytes

    for value in ({"b": [1, (2, 3)], "a": "张\"\\\x00\u2028"}, {"n": 2 ** 70}, {1: "x"},
                  ["a\ud800"], {"f": 0.1, "t": True, "z": None}):
        assert canonical_bytes(value) == json.dumps(
            value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass")


def test_a_creates_changes_are_its_records_made_when_read() -> None:
    """A new person's changes are every field of their record with a value (not the
    status), their manager and dotted lines included when those are linked later;
    made only when read, and equal to the tuple of them."""
    from orgsync.plan import CreatedChanges, FieldChange

    org = Snapshot.of([dept("D1", "研发中心")], [
        emp("E5", ("D1",), manager="E6", job_title="工程师"),
        emp("E6", ("D1",), manager="E5"),
        emp("E7", ("D1",), profile={"dotted_line_manager_keys": ["E5"]})])
    plan = diff(SourceData(org), DirectoryState())
    creates = {op.key: op for op in plan.operations if op.kind is OpKind.USER_CREATE}
    assert creates["E5"].mirror is not None
    assert creates["E5"].mirror["manager_key"] is None  # the cycle's link comes later
    for key, op in creates.items():
        assert isinstance(op.changes, CreatedChanges)
        assert op.changes._made is None  # nothing made until read
        want = tuple(FieldChange(k, None, v)
                     for k, v in sorted(org.employees[key].fields().items())
                     if k != "status" and v not in (None, "", []))
        assert op.changes.created() == [(c.field, c.new) for c in want]
        assert op.changes == want
        assert want == op.changes
        assert [c.field for c in op.changes] == [c.field for c in want]
    e5, e7 = creates["E5"].changes, creates["E7"].changes
    assert isinstance(e5, CreatedChanges)
    assert isinstance(e7, CreatedChanges)
    assert ("manager_key", "E6") in e5.created()
    assert ("dotted_line_manager_keys", ["E5"]) in e7.created()
