"""docs/cli.md is what the commands' --help says (scripts/cli_docs.py writes it), and every
command answers --help and -h."""

from click.testing import CliRunner

from w2v_cli.cli import cli


def test_cli_reference_matches_the_help(load_script):
    docs = load_script("cli_docs")
    assert docs.DOC.read_text(encoding="utf-8") == docs.render(), \
        "docs/cli.md is stale: run `python scripts/cli_docs.py` and commit it"


def test_every_command_answers_help(load_script):
    docs = load_script("cli_docs")
    runner = CliRunner()
    names = [path.split()[1:] for path, _ in docs.commands(cli, docs.context(cli, "w2v", None))]
    assert ["transcribe"] in names and ["export"] in names and ["config", "show"] in names
    for name in names:
        for flag in ("--help", "-h"):
            result = runner.invoke(cli, [*name, flag], prog_name="w2v")
            assert result.exit_code == 0, (name, result.output)
            assert result.output.startswith(f"Usage: w2v {' '.join(name)}".rstrip()), result.output[:200]
