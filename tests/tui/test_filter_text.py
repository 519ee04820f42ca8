"""The filter bar's language."""

from __future__ import annotations

import pytest

from mayuri.store.browse_queries import ParamCondition, RunQuery
from mayuri.tui.filter_text import FilterError, describe, parse_filter


def test_fields_params_words_metric_and_sort() -> None:
    query = parse_filter("status:failed,cancelled user:ana exp:addition lr>1e-3 batch_size=64 "
                         "opt.name!=adam metric:val_loss sort:-duration 3f2a")
    assert query.fields == {"status": ("failed", "cancelled"), "user": ("ana",), "experiment": ("addition",)}
    assert query.params == (ParamCondition("lr", ">", 1e-3), ParamCondition("batch_size", "=", 64),
                            ParamCondition("opt.name", "!=", "adam"))
    assert query.words == ("3f2a",)
    assert (query.metric, query.sort, query.descending) == ("val_loss", "duration", True)


def test_values_keep_their_type() -> None:
    query = parse_filter("a=true b=1.5 c=7 d=text")
    assert [c.value for c in query.params] == [True, 1.5, 7, "text"]


def test_sort_and_metric_carry_over_from_the_current_query() -> None:
    base = RunQuery(metric="loss", sort="job", descending=False)
    query = parse_filter("status:failed", base)
    assert (query.metric, query.sort, query.descending) == ("loss", "job", False)
    assert parse_filter("", base).fields == {}


@pytest.mark.parametrize("text, message", [
    ("colour:red", "unknown field 'colour'"),
    ("sort:height", "cannot sort by 'height'"),
    ("status:", "needs a value"),
    ('job:"open', "unbalanced quotes"),
])
def test_mistakes_are_explained(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filter(text)


def test_describe_writes_the_filters_back() -> None:
    text = "status:failed lr>0.001 word"
    assert describe(parse_filter(text)) == text
