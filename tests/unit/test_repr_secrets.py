"""Objects a notebook may display (the last line of a cell, a verbose traceback) never show a
password: neither the one given to ``%hail connect`` (typed at --password-prompt, read from a
file or variable) nor one inside the Livy URL."""

from __future__ import annotations

from hail_emr_lab.config import Config
from hail_emr_lab.notebook.connect import ConnectOptions
from hail_emr_lab.notebook.context import HailContext

URL = "http://alice:url-secret-1@10.0.0.5:8998"


def test_connect_options_and_context_repr_hide_passwords():
    opts = ConnectOptions(url=URL, password="typed-secret-2")
    for shown in (repr(opts), repr(HailContext(config=Config(), options=opts, endpoint=URL)), str(opts)):
        assert "url-secret-1" not in shown and "typed-secret-2" not in shown, shown
        assert "http://***@10.0.0.5:8998" in shown and "password='***'" in shown, shown
    assert "password=None" in repr(ConnectOptions())  # unset stays visible as unset
