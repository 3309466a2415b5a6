"""`python -m vestis`: the same command as `vestis`."""

from vestis.cli import app

app(prog_name="vestis")
