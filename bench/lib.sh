# Pieces the benchmark scripts share (sourced by the bench/*.sh scripts). Expects OUT
# (the benchmarks' cache and scratch directory) to be set.

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Stops every process the script recorded in PIDS (for its EXIT trap); stopped ones resume
# first so that they can die.
PIDS=()
stop_pids() {
  for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}

# A customer with an API key and one space on the server at URL (qb.py setup as ADMIN):
# sets BENCH_CUSTOMER, BENCH_USER (key:secret) and BENCH_SPACE.
bench_customer() { # URL ADMIN
  local setup
  setup=$($QB setup "$1" "$2" bench 1)
  read -r BENCH_CUSTOMER BENCH_USER BENCH_SPACE < <(echo "$setup" |
    $PY -c 'import json,sys; d=json.load(sys.stdin); print(d["customer"], d["user"], d["spaces"][0])')
}

# nginx as the static-file reference: 2 workers, no access log, everything under DIR (files
# served from DIR/www, temp files in DIR/tmp), listening on 127.0.0.1:PORT, in the
# foreground of a background job recorded in PIDS (and NGINX_PID). HTTP_EXTRA: more
# directives of the http block; LOCATIONS: the server's location blocks (default: static
# files as application/json). Returns once READY_PATH answers.
start_nginx() { # DIR PORT READY_PATH [HTTP_EXTRA] [LOCATIONS]
  local dir=$1 port=$2 ready=$3 extra=${4:-} locations=${5:-'location / { default_type application/json; }'}
  mkdir -p "$dir/www" "$dir/tmp"
  chmod -R a+rX "$dir"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  $extra
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp; uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  server {
    listen 127.0.0.1:$port;
    root $dir/www;
    $locations
  }
}
EOF
  nginx -c "$dir/nginx.conf" >"$dir/out.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=($NGINX_PID)
  wait_http "http://127.0.0.1:$port$ready"
}

wait_http() { # URL [tries, 50 ms apart]
  for _ in $(seq 1 "${2:-400}"); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: $1 did not come up" >&2
  return 1
}

# The inputs: per image, three 'vips perlin' bands (cells 400/61/7, structure at several
# scales) joined and saved as JPEG Q90; REPLICATE>1 tiles a smaller image (the big one).
gen_image() { # OUT W H SEED [REPLICATE]
  local out=$1 w=$2 h=$3 seed=$4 rep=${5:-1} t
  t=$(mktemp -d "$OUT/gen.XXXXXX")
  local tw=$((w / rep)) th=$((h / rep))
  vips perlin "$t/r.v" $tw $th --cell-size 400 --uchar --seed $seed
  vips perlin "$t/g.v" $tw $th --cell-size 61 --uchar --seed $((seed + 1000))
  vips perlin "$t/b.v" $tw $th --cell-size 7 --uchar --seed $((seed + 2000))
  vips bandjoin "$t/r.v $t/g.v $t/b.v" "$t/x.v"
  if [ "$rep" -gt 1 ]; then vips replicate "$t/x.v" "$t/y.v" $rep $rep; mv "$t/y.v" "$t/x.v"; fi
  vips jpegsave "$t/x.v" "$out.tmp.jpg" --Q 90
  mv "$out.tmp.jpg" "$out"
  rm -rf "$t"
}
export -f gen_image
export OUT

make_inputs() { # DIR N W H: DIR/img01.jpg … made once (2 at a time) and kept for later runs
  local dir=$1 n=$2 w=$3 h=$4
  mkdir -p "$dir"
  for i in $(seq -w 1 "$n"); do
    [ -s "$dir/img$i.jpg" ] || echo "$dir/img$i.jpg $w $h $((10#$i))"
  done | xargs -r -P2 -n4 bash -c 'gen_image "$@"' _
}

perf_summary() { # DATA OUT: by library, inclusive time by symbol (callers), self time by symbol
  local data=$1 o=$2
  {
    echo "-- share of samples by library (self)"
    perf report -i "$data" --stdio --no-children --sort dso --percent-limit 1 -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
    echo "-- inclusive (children) time by symbol, >= 4%"
    perf report -i "$data" --stdio --children --sort sym --percent-limit 3 -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | grep -v '\] 0x0000' | head -45
    echo "-- self time by symbol, >= 1%"
    perf report -i "$data" --stdio --no-children --sort dso,sym --percent-limit 1 -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -25
  } | cut -c1-180 >"$o" || true
}
