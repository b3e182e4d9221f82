"""dlt's Postgres destination, with connection settings optional as libpq has them.

dlt's ``PostgresCredentials`` require a password and a host, so a DSN that libpq accepts
(``postgresql://postgres@127.0.0.1:5432/test`` with trust or peer authentication, a password
from ``PGPASSWORD`` or ``~/.pgpass``, ``postgresql:///test?host=/var/run/postgresql`` for a
Unix socket) failed with "Missing 1 field(s) in configuration: credentials". Here user,
password, host and database may be left out: the URL dlt hands to psycopg2 then leaves them
out too, and libpq fills them in its own way (``PGUSER``, ``PGPASSWORD``, ``PGPASSFILE`` or
``~/.pgpass``, ``PGHOST`` or the default socket, ``PGDATABASE``), exactly as ``psql`` would.

dlt reads a configspec's annotations at class creation, so they are ``Optional[...]`` here,
not postponed ``X | None`` strings.
"""

from typing import Optional

from dlt.common.configuration import configspec
from dlt.common.typing import TSecretStrValue
from dlt.destinations.impl.postgres.configuration import (
    PostgresClientConfiguration,
    PostgresCredentials,
)
from dlt.destinations.impl.postgres.factory import postgres

DESTINATION_NAME = "postgres"
"""Its configuration section stays dlt's: DESTINATION__POSTGRES__CREDENTIALS."""


@configspec(init=False)
class LibpqPostgresCredentials(PostgresCredentials):
    """Postgres credentials whose every part but the driver is optional, as in libpq."""

    username: Optional[str] = None  # noqa: UP045 (see the module docstring)
    password: Optional[TSecretStrValue] = None  # noqa: UP045
    host: Optional[str] = None  # noqa: UP045
    database: Optional[str] = None  # noqa: UP045


@configspec
class LibpqPostgresConfiguration(PostgresClientConfiguration):
    credentials: LibpqPostgresCredentials = None  # type: ignore[assignment]


class libpq_postgres(postgres):  # noqa: N801 (dlt names destination factories in lower case)
    """``dlt.destinations.postgres`` resolving ``LibpqPostgresCredentials``.

    Make it with ``destination_name=DESTINATION_NAME`` (dlt reads a factory's arguments from
    its signature, so this class adds none).
    """

    spec = LibpqPostgresConfiguration
