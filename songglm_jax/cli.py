"""What every command-line entry point shares: flag errors and bad input as one line on stderr.

Usage in a CLI module::

    def main(argv): ...
    if __name__ == '__main__':
      cli.run(main)

A bad flag, an unexpected positional argument, a ``ValueError`` raised by the program (the
project's convention for bad config or input) or an ``OSError`` (a path that cannot be read or
written: the message names it) prints ``<program>: error: <message>`` on one line and exits with
status 2 (flags) or 1 (input), without a traceback. Other exceptions are real bugs and keep
their traceback.

Log lines: absl INFO records from other libraries (Orbax writes several per checkpoint, JAX one
per backend probe) are dropped so that the console shows the project's progress; warnings and
errors always pass. ``--verbosity=0`` (or any explicit ``-v``) shows everything.
"""

from __future__ import annotations

import logging as py_logging
import os
import sys
from typing import Callable, Sequence

from absl import app, flags
from absl import logging

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class _ProjectInfoOnly(py_logging.Filter):
  """Pass warnings and errors, and INFO/DEBUG records logged from this package's files."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or os.path.abspath(
        record.pathname).startswith(_PACKAGE_DIR)


def quiet_other_libraries() -> None:
  """Install :class:`_ProjectInfoOnly` on absl's handler (once)."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _ProjectInfoOnly) for f in handler.filters):
    handler.addFilter(_ProjectInfoOnly())


def _program() -> str:
  main = sys.modules.get('__main__')
  spec = getattr(main, '__spec__', None)
  return spec.name if spec is not None and spec.name else os.path.basename(sys.argv[0])


def fail(message: str, status: int = 1) -> None:
  """Print one error line and exit."""
  print(f'{_program()}: error: {message}', file=sys.stderr)
  sys.exit(status)


def _parse(argv: Sequence[str]) -> list[str]:
  try:
    rest = flags.FLAGS(list(argv))
  except flags.Error as e:
    fail(str(e).replace('\n', ' '), status=2)
  except (AttributeError, KeyError) as e:  # ml_collections: --config.x.y names no field
    fail(f'unknown config field in a --config.* override: {str(e).strip(chr(34))}', status=2)
  except (TypeError, ValueError) as e:  # ml_collections: a value of the wrong type
    fail(f'bad --config.* override: {e}'.replace('\n', ' '), status=2)
  if len(rest) > 1:
    fail(f'unexpected arguments: {" ".join(rest[1:])}', status=2)
  if not flags.FLAGS['verbosity'].present:
    quiet_other_libraries()
  return rest


def os_error_text(e: OSError) -> str:
  """One line for an ``OSError``: the path(s) it names, then the reason."""
  where = ' -> '.join(str(f) for f in (e.filename, e.filename2) if f is not None)
  reason = e.strerror or str(e) or type(e).__name__
  return f'{where}: {reason}' if where else reason


def run(main: Callable[[list[str]], object]) -> None:
  """``absl.app.run`` with one-line errors for bad flags, ``ValueError`` and ``OSError``."""

  def guarded(argv):
    try:
      return main(argv)
    except ValueError as e:
      fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    except OSError as e:
      fail(os_error_text(e).splitlines()[0])

  app.run(guarded, flags_parser=_parse)
