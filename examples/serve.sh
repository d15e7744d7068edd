# Sourced by the examples: serve a folder over HTTP on 127.0.0.1 and write urls.csv for it.
# Usage: source "$here/serve.sh" FOLDER   -> sets $python, $work (a temporary folder removed
# at exit), $port, and writes $work/urls.csv from urls.template.csv.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=${work:-$(mktemp -d)}
# Prefer installed commands; fall back to this checkout's launchers.
command -v a2d-read >/dev/null || PATH="$here/../bin:$PATH"
python=$(command -v python3 || command -v python)

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$python" -m http.server "$port" --bind 127.0.0.1 --directory "$1" >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do  # wait until the server answers
    "$python" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
    sleep 0.1
done
sed "s|@BASE@|http://127.0.0.1:$port|" "$here/urls.template.csv" >"$work/urls.csv"
