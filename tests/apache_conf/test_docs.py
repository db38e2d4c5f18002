"""docs/production.md and the generated files against the code: every option they name
exists, and every command runs the venv's interpreter by its absolute path."""

import argparse
import re

from apache_conf import options, render

DOC = render.REPO_DIR / "docs" / "production.md"


def parser_flags():
    parser = argparse.ArgumentParser()
    options.add_arguments(parser)
    return {flag for action in parser._actions for flag in action.option_strings}


def test_every_option_the_doc_names_exists():
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", DOC.read_text()))
    # Options of other programs the doc quotes (pip, certbot, apt-get, curl).
    others = {"--upgrade", "--no-cache-dir", "--webroot", "--deploy-hook", "--no-upgrade",
              "--noinput", "--deploy"}  # fmt: skip
    assert named - others <= parser_flags(), named - others - parser_flags()
    for flag in ("--tls-cert", "--behind-tls-proxy", "--http-only", "--dry-run", "--server-root"):
        assert flag in named


def test_commands_name_the_interpreter_by_its_absolute_path():
    texts = {DOC: DOC.read_text()}
    texts.update({path: path.read_text() for path in render.GENERATED_DIR.iterdir()})
    for path, text in texts.items():
        relative = re.findall(r"(?<![/\w.-])python3?(?= )", text)
        assert relative == [], f"{path}: a bare 'python' command"
        assert "site/manage.py" not in re.sub(r"/srv/site/site/manage\.py", "", text), path
