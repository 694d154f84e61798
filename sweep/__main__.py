"""`python -m sweep`: the same CLI as the `sweep` command (named so in usage lines and errors)."""

from sweep.cli import app

if __name__ == "__main__":
    app(prog_name="sweep")
