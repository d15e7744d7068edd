# Sourced by the scale-out recipes: this checkout's commands unless all are installed, and the
# URL list. Usage: source "$here/recipe.sh" "${1:-}"
# Sets $urls. With no URL list it serves examples/data on 127.0.0.1 (see serve.sh), sets
# $from_scratch=1 (the caller removes its old output) and PER_SHARD defaults to 4.
for command in a2d-read a2d-shard a2d-fetch a2d-write a2d-stats; do  # prefer installed commands
    command -v "$command" >/dev/null || { PATH="$here/../bin:$PATH"; break; }
done
from_scratch=""
if [ -n "${1:-}" ]; then
    urls=$1
else  # the example data, served on a new port
    source "$here/serve.sh" "$here/data"
    urls=$work/urls.csv
    PER_SHARD=${PER_SHARD:-4}
    from_scratch=1
fi
