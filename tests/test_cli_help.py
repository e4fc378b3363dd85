"""Every command's --help shows an example invocation; every command has the shared flags."""
from ocdl.cli.main import _subparsers, build_parser


def _leaves(parser, path=()):
    sub = _subparsers(parser)
    if sub is None:
        yield path, parser
        return
    for name, p in sub.choices.items():
        yield from _leaves(p, path + (name,))


def test_every_command_has_example_and_shared_flags():
    leaves = list(_leaves(build_parser()))
    assert leaves, "no commands registered"
    for path, p in leaves:
        text = p.format_help()
        assert "example:" in text and "ocdl " + " ".join(path) in text, f"ocdl {' '.join(path)}: no example"
        flags = {s for a in p._actions for s in a.option_strings}
        for flag in ("--quiet", "--debug", "--config"):
            assert flag in flags, f"ocdl {' '.join(path)} lacks {flag}"
