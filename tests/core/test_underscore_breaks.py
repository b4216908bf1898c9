"""An error code in a narrow column breaks after its underscores only, and what it holds
is escaped before the breaks are put in (the code comes from our own answers, but a
filter that marks text safe must not trust it)."""

from __future__ import annotations

from django.template import Context, Template


def test_an_error_code_may_break_after_each_underscore_and_nowhere_else() -> None:
    rendered = Template("{% load display %}{{ code|underscore_breaks }}").render(
        Context({"code": "insufficient_permissions"})
    )
    assert rendered == "insufficient_<wbr>permissions"


def test_what_the_code_holds_is_escaped_before_the_breaks_go_in() -> None:
    rendered = Template("{% load display %}{{ code|underscore_breaks }}").render(
        Context({"code": '<script>a_b</script>"&'})
    )
    assert rendered == "&lt;script&gt;a_<wbr>b&lt;/script&gt;&quot;&amp;"
