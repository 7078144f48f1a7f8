"""Key rules and who-is-who resolution (orgsync.identity), as pure logic."""

from __future__ import annotations

from orgsync.identity import Identity, KeyRules, mobile_digits, resolve

ABSENT = {"E00030": ("a@x.com", "+8613800000030"), "E00031": ("b@x.com", "+8613800000031")}


def test_key_rules() -> None:
    assert KeyRules().normalize(" e00030 ") == KeyRules().normalize("E00030")
    assert KeyRules().normalize("E000030") != KeyRules().normalize("E00030")
    zeros = KeyRules(ignore_leading_zeros=True)
    assert zeros.normalize("E000030") == zeros.normalize("E00030") == "e30"
    assert zeros.normalize("A10-007") == "a10-7"
    assert KeyRules(ignore_case=False).normalize("e1") != KeyRules(ignore_case=False).normalize("E1")
    assert mobile_digits("+86 138-0000-0030") == mobile_digits("13800000030") == "13800000030"
    assert mobile_digits("") is None


def test_new_key_matching_one_person_is_a_rekey() -> None:
    by_rule = resolve({"e00030": Identity("e00030", None, None)}, [], ABSENT, KeyRules())
    assert by_rule.rekeys == {"e00030": "E00030"}
    by_contact = resolve({"HR-30": Identity("HR-30", "A@x.com", "13800000030")}, [], ABSENT,
                         KeyRules())
    assert by_contact.rekeys == {"HR-30": "E00030"}
    assert not by_contact.conflicts


def test_ambiguous_or_contradicting_matches_are_conflicts() -> None:
    contradicting = resolve({"HR-30": Identity("HR-30", "a@x.com", "13900000000")}, [], ABSENT,
                            KeyRules())
    assert not contradicting.rekeys
    assert [k for k, _ in contradicting.conflicts] == ["HR-30"]
    assert set(contradicting.accounted) == {"E00030"}
    two = resolve({"HR-X": Identity("HR-X", "a@x.com", "13800000031")}, [], ABSENT, KeyRules())
    assert set(two.accounted) == {"E00030", "E00031"}
    claimed = resolve({"e00030": Identity("e00030", None, None),
                       "HR-30": Identity("HR-30", "a@x.com", None)}, [], ABSENT, KeyRules())
    assert not claimed.rekeys
    assert sorted(k for k, _ in claimed.conflicts) == ["HR-30", "e00030"]


def test_held_rows_account_or_hold_everyone() -> None:
    rows = [Identity(None, "b@x.com", None, "e.csv:3", usable=False),
            Identity(None, None, None, "e.csv:4", usable=False),
            Identity("E99999", None, "1", "e.csv:5")]
    res = resolve({}, rows, ABSENT, KeyRules())
    assert set(res.accounted) == {"E00031"}
    assert [r.where for r in res.unidentified] == ["e.csv:4"]  # E99999 is someone new


def test_changed_contact_of_a_present_person_may_be_a_wrong_id() -> None:
    res = resolve({}, [], ABSENT, KeyRules(),
                  changed={"E00012": Identity("E00012", "a@x.com", "+8613800000030")})
    assert [k for k, _ in res.conflicts] == ["E00012"]
    assert set(res.accounted) == {"E00030"}
