"""The ``mne-synapse`` command line.

Verbs: ``info``, ``demo``, ``fit-encoder``, ``fit-generator``, ``generate``,
``evaluate`` and ``convert-official`` (``mne-synapse VERB --help``). Each working
verb reads an optional configuration file (TOML, or YAML with pyyaml), or a named
configuration (``--config paper``), that its flags override; see
:mod:`mne_synapse.cli._config`. Heavy libraries are imported inside the verbs,
so ``--help`` answers at once.

Exit status: 0 done; 1 the work failed (a missing or unreadable file, data that
do not fit); 2 the command line or configuration is wrong; 130 interrupted.
"""

import sys

from ._config import UsageError
from ._parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv=None):
    """Run ``mne-synapse``; return the exit status."""
    args = build_parser().parse_args(argv)
    prefix = f"mne-synapse {args.command}: error:"
    try:
        return args.func(args)
    except UsageError as err:
        print(prefix, str(err).replace("\n", " "), file=sys.stderr)
        return 2
    except (OSError, ValueError, TypeError) as err:
        print(prefix, str(err).replace("\n", " "), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mne-synapse {args.command}: interrupted", file=sys.stderr)
        return 130
