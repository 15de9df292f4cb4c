"""Operations: what keeps the system running 24/7 — alerts, disk-pressure retention, backups and
restore, integrity checks. Domain code: it never imports the CLI or the service that wires it."""
