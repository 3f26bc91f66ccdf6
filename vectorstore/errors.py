"""The few exceptions the product raises, each with a message a user can act on.

QAError                 base: anything the CLI or the UI shows as a plain message
├── LoadError           one input file or record could not be read as an article
├── StoreError          the Chroma store is unreachable, locked or inconsistent
│   └── LockedError     another process is writing to the embedded data folder
└── ConfigError         a setting is wrong (missing model folder, bad URL, ...)
"""

from __future__ import annotations


class QAError(Exception):
    """Base of every error meant for a user; str(error) is the message to show."""


class LoadError(QAError):
    """A file or a record inside it is not a usable article."""


class StoreError(QAError):
    """The vector store cannot be used as asked."""


class LockedError(StoreError):
    """Another process holds the embedded data folder's writer lock (``vectorstore.lock``)."""


class ConfigError(QAError):
    """A setting is missing or invalid."""
