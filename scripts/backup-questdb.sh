#!/usr/bin/env bash
# The scheduled backup job (cron, or the systemd timer in scripts/systemd/): back up the managed
# QuestDB with `pumpwatch backup create`, then remove old backups with `pumpwatch backup prune`.
# Settings come from the usual config file and environment ([backup] dir, keep_days, compress,
# upload; e.g. PUMPWATCH_BACKUP_COMPRESS=zstd); extra arguments go to `backup create`
# (e.g. --upload s3://bucket/prefix). Exits non-zero, with the error on stderr, when either step
# fails, so cron mails it and systemd marks the unit failed.
#
#   crontab:  15 3 * * *  /opt/pumpwatch/scripts/backup-questdb.sh >>/var/log/pumpwatch-backup.log 2>&1
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ -x "$repo/.venv/bin/pumpwatch" ]]; then
    pumpwatch=("$repo/.venv/bin/pumpwatch")
elif command -v pumpwatch >/dev/null 2>&1; then
    pumpwatch=(pumpwatch)
else
    echo "backup-questdb.sh: no pumpwatch found ($repo/.venv/bin/pumpwatch or on PATH); run scripts/setup.sh" >&2
    exit 127
fi

echo "$(date -u +%FT%TZ) backup: create"
"${pumpwatch[@]}" backup create "$@"
echo "$(date -u +%FT%TZ) backup: prune"
"${pumpwatch[@]}" backup prune
