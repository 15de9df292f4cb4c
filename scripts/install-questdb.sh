#!/usr/bin/env bash
# Install the pinned QuestDB server jar from Maven Central into the pumpwatch cache, and record
# which JDK runs it. Idempotent: a second run with the jar and JDK in place does nothing.
#
#   scripts/install-questdb.sh            install (or confirm) the pinned release
#   scripts/install-questdb.sh --print    print the installed jar path and java binary
#
# Environment: PUMPWATCH_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/pumpwatch),
#              QUESTDB_JAVA_HOME (force a JDK), JAVA_HOME (considered first when set).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../questdb.env
source "$here/../questdb.env"
: "${QUESTDB_VERSION:?questdb.env must set QUESTDB_VERSION}"
: "${QUESTDB_MIN_JAVA:?questdb.env must set QUESTDB_MIN_JAVA}"

cache_root="${PUMPWATCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pumpwatch}"
dest="$cache_root/questdb/$QUESTDB_VERSION"
jar="$dest/questdb-$QUESTDB_VERSION.jar"
java_file="$dest/java"

java_major() {  # java_major /path/to/bin/java -> 17
  "$1" -version 2>&1 | sed -n 's/.*version "\([0-9][0-9]*\)\(\.[^"]*\)\{0,1\}".*/\1/p' | head -n 1
}

pick_java() {  # smallest installed JDK whose major version is >= QUESTDB_MIN_JAVA
  local candidates=() best="" best_major=999 c major
  [[ -n "${QUESTDB_JAVA_HOME:-}" ]] && candidates+=("$QUESTDB_JAVA_HOME/bin/java")
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME/bin/java")
  for c in /usr/lib/jvm/*/bin/java; do candidates+=("$c"); done
  command -v java >/dev/null 2>&1 && candidates+=("$(readlink -f "$(command -v java)")")
  for c in "${candidates[@]}"; do
    [[ -x "$c" ]] || continue
    major="$(java_major "$c")"
    [[ -n "$major" ]] || continue
    if [[ -n "${QUESTDB_JAVA_HOME:-}" && "$c" == "$QUESTDB_JAVA_HOME/bin/java" ]]; then
      (( major >= QUESTDB_MIN_JAVA )) || { echo "QUESTDB_JAVA_HOME=$QUESTDB_JAVA_HOME is Java $major; QuestDB $QUESTDB_VERSION needs >= $QUESTDB_MIN_JAVA" >&2; exit 1; }
      echo "$c"; return
    fi
    if (( major >= QUESTDB_MIN_JAVA && major < best_major )); then best="$c"; best_major="$major"; fi
  done
  if [[ -z "$best" ]]; then
    echo "no JDK >= $QUESTDB_MIN_JAVA found (looked at \$QUESTDB_JAVA_HOME, \$JAVA_HOME, /usr/lib/jvm, PATH)" >&2
    exit 1
  fi
  echo "$best"
}

if [[ "${1:-}" == "--print" ]]; then
  [[ -f "$jar" && -f "$java_file" ]] || { echo "QuestDB $QUESTDB_VERSION is not installed; run $0" >&2; exit 1; }
  echo "jar=$jar"; echo "java=$(cat "$java_file")"; exit 0
fi

java_bin="$(pick_java)"
if [[ -f "$jar" ]] && python3 -m zipfile -t "$jar" >/dev/null 2>&1; then
  echo "QuestDB $QUESTDB_VERSION already installed: $jar"
else
  command -v mvn >/dev/null 2>&1 || { echo "mvn (Apache Maven) is required to fetch org.questdb:questdb:$QUESTDB_VERSION" >&2; exit 1; }
  echo "Fetching org.questdb:questdb:$QUESTDB_VERSION from Maven Central ..."
  mkdir -p "$dest"
  tmp="$(mktemp -d "$dest/.fetch.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  mvn -q -B -Dstyle.color=never org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
      -Dartifact="org.questdb:questdb:$QUESTDB_VERSION:jar" -DoutputDirectory="$tmp" -Dmdep.overWriteReleases=true
  python3 -m zipfile -t "$tmp/questdb-$QUESTDB_VERSION.jar" >/dev/null || { echo "downloaded jar is corrupt" >&2; exit 1; }
  mv "$tmp/questdb-$QUESTDB_VERSION.jar" "$jar"
  echo "Installed $jar"
fi
echo "$java_bin" > "$java_file"
echo "Java for QuestDB $QUESTDB_VERSION: $java_bin (Java $(java_major "$java_bin"))"
