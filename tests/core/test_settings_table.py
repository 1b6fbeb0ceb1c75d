"""The one table of CO settings (``core.config.SETTINGS``): the checks read it, the defaults come
from it, and the README's (or docs/') settings table lists exactly its keys and defaults."""

import dataclasses
import re
from pathlib import Path

import pytest

from solo_coplugin.core import (
    CO_SETTINGS,
    SETTINGS,
    CoConfigError,
    check_co_settings,
    check_local_keys,
    check_local_weight,
    setting,
    setting_names,
)
from solo_coplugin.core import config

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMON = [row for row in SETTINGS if row.method is None]


def test_the_table_is_the_list_of_settings_every_method_reads():
    names = [row.name for row in SETTINGS]
    assert len(set(names)) == len(names) and all(name.startswith("local_") for name in names)
    assert CO_SETTINGS == tuple(row.name for row in COMMON)
    assert setting_names("co_dino") == CO_SETTINGS + ("local_num_prototypes",)
    for row in SETTINGS:
        assert row.meaning and "\n" not in row.meaning, row.name  # one line
        assert (row.default_key is None) == (row.method is None), row.name


def test_the_defaults_come_from_the_table_and_pass_their_own_checks():
    assert check_co_settings({}) == {row.name: row.default for row in COMMON}
    for row in COMMON:
        for value in row.choices:
            assert check_co_settings({row.name: value})[row.name] == value


def _bad_values(row):
    """Values of the wrong type, and just outside the allowed range or choices."""

    values = [["a", "list"]]
    if row.type == "bool":
        values += ["yes", 1]
    elif row.choices:
        values += [f"not_{row.choices[0]}"]
    if row.minimum is not None:
        values += [row.minimum - (1 if "int" in row.type else 0.1), "4"]
    if row.maximum is not None:
        values += [row.maximum + 0.5]
    return values


@pytest.mark.parametrize(
    "name, value", [(row.name, value) for row in COMMON for value in _bad_values(row)]
)
def test_a_value_outside_the_table_names_the_key_and_the_fix(name, value):
    with pytest.raises(CoConfigError) as error:
        check_co_settings({name: value})
    message = str(error.value)
    assert message.startswith(f"method_kwargs.{name}") and re.search(
        r"Fix: .*method_kwargs\.", message
    )


def test_the_checks_read_their_range_and_default_from_the_table(monkeypatch):
    row = setting("local_weight")
    narrower = dataclasses.replace(row, maximum=0.5, default=0.25)
    monkeypatch.setitem(config._BY_NAME, "local_weight", narrower)
    with pytest.raises(CoConfigError, match=r"must be in \[0, 0\.5\], got 0\.6"):
        check_local_weight(0.6)
    monkeypatch.setattr(config, "SETTINGS", (narrower,) + SETTINGS[1:])
    assert check_co_settings({})["local_weight"] == 0.25


def test_the_unknown_key_check_knows_the_settings_of_each_method():
    check_local_keys(["local_num_prototypes", "local_weight"], method="co_dino")
    with pytest.raises(CoConfigError, match="did you mean local_num_prototypes"):
        check_local_keys(["local_num_prototype"], method="co_dino")
    with pytest.raises(CoConfigError, match=r"method_kwargs\.local_num_prototypes"):
        check_local_keys(["local_num_prototypes"], method="co_byol")


# ------------------------------------------------------------------ the documented settings table


def documented_tables():
    """{file: rows} of the Markdown files (README.md, docs/*.md) whose table rows start with a
    CO setting; a row is (key, method annotation or None, default cell)."""

    tables = {}
    for path in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        if not path.exists():
            continue
        rows = []
        for line in path.read_text().splitlines():
            if not line.startswith("| `local_"):
                continue
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            key = re.match(r"`(local_\w+)`(?: \(([^)]+)\))?", cells[0])
            rows.append((key.group(1), key.group(2), cells[1]))
        if rows:
            tables[path.relative_to(REPO_ROOT)] = rows
    return tables


def documented_default(cell: str, row):
    text = cell.strip("`")
    if row.default_key is not None:
        return text == row.default_key
    literal = {"null": None, "True": True, "False": False}.get(text, text)
    if isinstance(literal, str):
        try:
            literal = float(text)
        except ValueError:
            pass
    return literal == row.default and type(literal) in (type(row.default), float)


def test_the_documented_settings_table_lists_exactly_the_table_with_its_defaults():
    tables = documented_tables()
    assert tables, "no settings table (rows starting with | `local_) in README.md or docs/*.md"
    for path, rows in tables.items():
        assert [key for key, _, _ in rows] == [row.name for row in SETTINGS], path
        for key, method, default in rows:
            row = setting(key)
            documented_method = method.lower().replace("-", "_") if method else None
            assert documented_method == row.method, (path, key)
            assert documented_default(default, row), (path, key, default, row.default)
