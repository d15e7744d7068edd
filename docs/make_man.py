"""Generate man/a2d-*.1 from the click commands, so man pages and --help never drift apart.

    python docs/make_man.py          # rewrite man/*.1
    python docs/make_man.py --check  # exit 1 if a committed page is out of date (the tests run this)

The options come from the commands themselves; the prose that --help has no room
for (details, files, examples) lives in PROSE below.
"""

import importlib
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from any2dataset import __version__  # noqa: E402

COMMANDS = ["read", "shard", "fetch", "subsample", "write", "stats", "mix", "all_in_one", "video2dataset"]

EXIT_STATUS = [
    ("0", "Success. Also when a reader of the output went away (for example \\fB| head\\fR)."),
    ("1", "Runtime error: I/O, an unexpected condition or a bug (\\fB--debug\\fR shows the traceback)."),
    ("2", "Usage error: bad options or arguments, a missing input file or column."),
    ("3", "Bad input data: a line that is not JSON, not an object, has invalid base64 or a wrongly "
          "typed reserved field. The message names the input and line: "
          "\\fBa2d-write: error: <stdin>:1234: invalid base64 in files.jpg\\fR."),
    ("4", "Incomplete output: input ended before some shards had all their rows; they were not written."),
    ("5", "The stage before failed: the input stream ended with its abort line (a stage that fails after "
          "writing records ends its output with one line {\"a2d_abort\": \"its error\"}). Shards that "
          "were not complete are not written, so a pipe cut short never publishes a short last shard."),
    ("130", "Interrupted (Ctrl-C). Nothing half-written is left under a final name."),
]

PROSE = {
    "read": {
        "details": [
            "The format is taken from the file name, after any compression suffix "
            "(\\fI.gz\\fR, \\fI.bz2\\fR, \\fI.xz\\fR, \\fI.zst\\fR): \\fI.txt\\fR, \\fI.csv\\fR, \\fI.tsv\\fR, "
            "\\fI.json\\fR (an array of objects, read whole), \\fI.jsonl\\fR or \\fI.ndjson\\fR, \\fI.parquet\\fR, "
            "\\fI.arrow\\fR or \\fI.feather\\fR (Arrow IPC), \\fI.tar\\fR (webdataset). Standard input is read "
            "as txt unless \\fB\\-\\-input\\-format\\fR says otherwise. Inputs may be local paths, fsspec URLs "
            "(\\fIs3://\\fR, \\fIgs://\\fR, \\fIhttps://\\fR, ...), glob patterns, brace patterns such as "
            "\\fIurls\\-{000..127}.parquet\\fR, and folders (the files of known formats inside, sorted, hidden "
            "files skipped). Lists are streamed: csv, tsv, txt and jsonl a line at a time, parquet and Arrow a "
            "batch at a time, reading only the columns needed, so memory does not grow with the input.",
            "In txt input each non\\-blank line is a URL. csv and tsv need a header row and give text values "
            "(an empty cell is null); parquet, Arrow and JSON keep their types. The URL column becomes "
            "\\fBurl\\fR, the caption column \\fBcaption\\fR, the clip column \\fBclips\\fR, and every other column "
            "is kept under its own name. Every record of one input has the same fields (jsonl lines may add "
            "more). Columns named like reserved record fields are refused. Rows with an empty URL are kept: "
            "a2d\\-fetch reports them as \\fBinvalid_url\\fR, so every row is accounted for.",
            "Existing datasets are read back for re\\-processing: webdataset tars, the files layout (a folder "
            "per shard) and tables of records (parquet or jsonl with a \\fBkey\\fR column, such as a parquet "
            "dataset). A shard's metadata parquet beside its tar or folder is merged in, so failed rows come "
            "out too. Records keep their \\fBkey\\fR and \\fBshard\\fR, and get \\fBshard_size\\fR from the "
            "metadata, so a2d\\-write gives them the same names again. A folder of an output (it has "
            "\\fI*_stats.json\\fR files) is read as its shards. img2dataset and video2dataset outputs read the same "
            "way.",
            "\\fB\\-\\-input\\-format raw\\fR turns each file of a folder into a record whose \\fBurl\\fR is its path; "
            "with \\fB\\-\\-inline\\fR its bytes come along as the payload, so an existing folder (local or "
            "remote) is packed into shards without any download.",
            "S3\\-compatible endpoints are configured the fsspec way, for example "
            "\\fBFSSPEC_S3_ENDPOINT_URL=http://127.0.0.1:9000\\fR, with the usual AWS credential variables.",
        ],
        "examples": [
            "a2d-read urls.txt | head -3",
            "a2d-read --url-col URL --caption-col TEXT 'laion-part-{00..09}.parquet' > records.jsonl",
            "a2d-read s3://bucket/lists/ | a2d-fetch -j 128 | a2d-write out/",
            "a2d-read --input-format raw --inline photos/ | a2d-shard | a2d-write packed/",
            "a2d-read out/ | a2d-fetch --retry-failed | a2d-write out/",
        ],
    },
    "shard": {
        "details": [
            "Keys and shards follow img2dataset: with N = \\fB\\-\\-number\\-sample\\-per\\-shard\\fR and "
            "D = \\fB\\-\\-oom\\-shard\\-count\\fR, row \\fIi\\fR of the input goes to shard S = start + i div N "
            "with key S * 10^ceil(log10 N) + i mod N, zero\\-padded to D + ceil(log10 N) digits "
            "(\\fI000010005\\fR is shard 1, row 5, for N = 10000). Keys depend only on input position, so the "
            "same input always gives the same keys. Every record also gets \\fBshard_size\\fR, the exact "
            "row count of its shard, which a2d\\-write uses to finish shards that arrive out of order. A shard "
            "is passed on once it is full (or the input ends), so a2d\\-shard holds at most N records.",
            "Records that arrive with shard, key and shard_size (an existing dataset read back by a2d\\-read) "
            "keep them; \\fB\\-\\-part\\fR and \\fB\\-\\-skip\\-done\\fR still apply.",
            "Resume: \\fB\\-\\-skip\\-done\\fR \\fIOUT\\fR leaves out the shards whose \\fIN_stats.json\\fR "
            "exists in OUT, so running the same pipeline again after a crash redoes only unfinished shards. "
            "a2d\\-write stores in each stats file a fingerprint of the shard's keys and URLs; a2d\\-shard "
            "recomputes it from the input and stops with status 2 if a finished shard would now get other "
            "rows (the input or N changed), instead of giving new rows old keys. Two cases are redone rather "
            "than refused: a finished shard that holds only the first of its rows now (written from an input "
            "that was cut short), and one whose stats file does not read as a JSON object (cut short by a "
            "crash; a warning names it). Shards held back until their size is known stay in memory up to "
            "64 MiB or 50,000 records, the rest in a temporary file.",
            "Fan\\-out: \\fB\\-\\-part\\fR \\fII/N\\fR keeps the shards with shard mod N = I, so N processes or "
            "hosts (GNU parallel, xargs \\-P, a Slurm array) cover the input exactly once without talking to "
            "each other. \\fB\\-\\-split\\fR \\fIDIR\\fR writes one JSONL file per shard (or per "
            "\\fB\\-\\-shards\\-per\\-file\\fR shards), named after its first shard, for tools that take one "
            "file per job.",
        ],
        "examples": [
            "a2d-read urls.csv | a2d-shard --skip-done out/ | a2d-fetch | a2d-write out/",
            "a2d-read urls.parquet | a2d-shard --part $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT | a2d-fetch | "
            "a2d-write s3://bucket/out/",
            "a2d-read urls.csv | a2d-shard --split parts/ && ls parts/*.jsonl | xargs -P 4 -I{} sh -c 'a2d-fetch "
            "{} | a2d-write out/'",
            "a2d-read urls-2.csv | a2d-shard --extend out/ | a2d-fetch | a2d-write out/",
        ],
    },
    "fetch": {
        "details": [
            "Reads records (a2d\\-record(5)) and downloads each \\fBurl\\fR with up to \\fB\\-\\-concurrency\\fR "
            "requests in flight, reusing connections. Every input record comes out exactly once: in the order "
            "downloads finish, or in input order with \\fB\\-\\-ordered\\fR. Records that already carry a payload "
            "pass through untouched, and so do rows that already failed (unless \\fB\\-\\-retry\\-failed\\fR) or "
            "were filtered, so re\\-processing pipelines can include a2d\\-fetch.",
            "A success carries the body under \\fBfiles\\fR with an extension from a specific Content\\-Type, else "
            "from the first bytes (jpg, png, gif, webp, wav, flac, mp4, ...), else from the URL, else \\fIbin\\fR; "
            "plus \\fBstatus\\fR success, \\fBmime\\fR, \\fBsize\\fR, \\fBhttp_status\\fR, \\fBfinal_url\\fR (after "
            "redirects), the hash, \\fBfetch_seconds\\fR (time spent in requests, all attempts; waiting for a "
            "slot, DNS or a retry does not count) and \\fBretries\\fR. A failure carries \\fBstatus\\fR "
            "failed_to_download, an \\fBerror_kind\\fR from the closed vocabulary of a2d\\-record(5) and a readable "
            "\\fBerror_message\\fR.",
            "Time limits, for every request at any concurrency: \\fB\\-\\-timeout\\fR bounds connecting (a "
            "request that never gets a connection fails as \\fBconnect\\fR, \\(lqno connection within Ns\\(rq) "
            "and each wait for data, the wait for the answer included (\\fBtimeout\\fR, \\(lqno answer within Ns "
            "of the request\\(rq or \\(lqno data for Ns\\(rq), on new and reused connections alike; "
            "\\fB\\-\\-deadline\\fR bounds one whole attempt, redirects and body included, so a server that drips "
            "one byte a second or redirects into an endless stream cannot stall a shard. A request is handed to "
            "the network only once it has its slots, so time spent waiting for one (the per\\-host cap, a "
            "paused host, \\-j, DNS) never counts toward either limit. Timeouts, connection errors, resets, "
            "truncated bodies, DNS failures other than a name that does not exist, 5xx, 408 and 429 are "
            "retried up to \\fB\\-\\-retries\\fR times; before retry k a2d\\-fetch waits a random time up to "
            "min(30, backoff * 2^k) seconds, or what the server's Retry\\-After says (at most "
            "\\fB\\-\\-max\\-retry\\-after\\fR), holding no download slot meanwhile. Other 4xx are never retried. "
            "So one record takes at most (retries + 1) * deadline plus the waits: with the defaults, "
            "3 * 60 + 1 + 2 = 183 seconds, or up to 3 * 60 + 2 * 60 = 300 with long Retry\\-After answers.",
            "Politeness per host (a host is a name and port): at most \\fB\\-\\-per\\-host\\fR requests in flight "
            "(default 16), reached by ramping up: a host starts at 2 and gets one more with each answer, so a "
            "small server never meets a burst of hundreds of connections while a big one is at its cap within "
            "a few round trips. Timeouts, failed or reset connections, 429 and 503 halve a host's limit; 429 "
            "and 503 also pause that host for their Retry\\-After (else 1 s, doubling with each refusal in a "
            "row), while the other hosts go on. A host that leaves \\fB\\-\\-host\\-down\\-after\\fR requests in a "
            "row without an answer (default 3: no connection, or nothing within \\fB\\-\\-timeout\\fR) is down for "
            "60 s: its waiting records fail at once as \\fBhost_down\\fR rather than each waiting out the "
            "timeout. Records whose host must wait do not hold one of the \\-j slots: up to "
            "\\fB\\-\\-lookahead\\fR of them (default 2 x \\-j, at least 1024) are read ahead so that other hosts "
            "keep the slots busy. \\fB\\-\\-per\\-host 0\\fR turns the cap and the ramp\\-up off; "
            "\\fB\\-\\-no\\-ramp\\-up\\fR starts every host at its cap.",
            "DNS: host names are looked up by a2d\\-fetch itself, asynchronously on its event loop (no thread per "
            "lookup), from the name servers of /etc/resolv.conf or \\fB\\-\\-dns\\-server\\fR, /etc/hosts first; "
            "each name is asked once however many URLs name it, and kept in one LRU cache of "
            "\\fB\\-\\-dns\\-cache\\fR names: addresses for their TTL (30 s to 1 h), names that do not exist or have "
            "no address for their negative TTL (30 s to 10 min), server failures and timeouts for 30 s. A name "
            "that does not resolve fails as \\fBdns\\fR. \\fB\\-\\-system\\-dns\\fR lets libcurl resolve through "
            "the system instead. Behind a proxy (\\fB\\-\\-proxy\\fR, or http_proxy, https_proxy, all_proxy and "
            "no_proxy in the environment, as curl reads them) a2d\\-fetch still resolves every target name "
            "itself, first URL and redirects, and checks its addresses before the proxy is asked.",
            "Safety: the User\\-Agent names the tool and its version. X\\-Robots\\-Tag directives "
            "in \\fB\\-\\-disallowed\\-header\\-directives\\fR (noai, noimageai, noindex, noimageindex) refuse a "
            "sample as \\fBrobots_optout\\fR from the headers, before the body is read; a directive scoped to a "
            "user agent counts when it names any2dataset, img2dataset or the \\fB\\-\\-user\\-agent\\-token\\fR "
            "(in one "
            "header, \\fIotherbot: noindex, any2dataset: noai\\fR, a user agent scopes the directives after it); "
            "\\fInone\\fR means noindex. Replies that carry no file fail as \\fBno_content\\fR (204, 205, 304, "
            "an empty body) or \\fBinvalid_reply\\fR (a 3xx without Location, HTTP/0.9 or garbage, headers over "
            "libcurl's limits). URLs outside ASCII are requested as browsers do: the host in IDNA (checked after "
            "the conversion), the rest percent\\-encoded as UTF\\-8; the record keeps the URL as given. "
            "Only http, https and data: URLs are fetched unless \\fB\\-\\-allow\\-scheme\\fR adds others (s3, gs, "
            "hf, file, ... through fsspec; file also takes plain local paths). A URL with whitespace or a "
            "control character inside is \\fBinvalid_url\\fR (around it they are dropped). Link\\-local and "
            "cloud metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200, in every "
            "spelling: decimal, octal and hex IPv4, IPv4\\-mapped, \\-compatible, NAT64, 6to4 and Teredo "
            "IPv6) and metadata host names (metadata.google.internal, ...) are refused, after DNS, at every "
            "redirect and behind a proxy, unless \\fB\\-\\-allow\\-address\\fR lets them through. Redirects "
            "go to http or https only, each one checked and scheduled like a new request to its host; the "
            "\\fB\\-\\-header\\fR and \\fB\\-\\-header\\-env\\fR headers go to the first URL's host only, "
            "unless \\fB\\-\\-location\\-trusted\\fR. TLS certificates are verified (against "
            "\\fB\\-\\-ca\\-bundle\\fR if given) unless \\fB\\-\\-insecure\\fR.",
            "Bodies over \\fB\\-\\-max\\-size\\fR are refused from Content\\-Length or cut off while streaming. "
            "Memory stays bounded: at most \\fB\\-\\-concurrency\\fR bodies in flight, finished "
            "records waiting for a slow reader (an eighth of \\fB\\-j\\fR, at most 128; while they wait no "
            "new download starts) and the lookahead; input is not read further meanwhile. Bodies in memory "
            "stay within \\fB\\-\\-body\\-memory\\fR: a body over its share (the budget divided by the "
            "downloads in flight and the waiting records) goes to an unlinked temporary file in TMPDIR as it "
            "arrives and is read back when the next stage takes it, so 50 MB videos at \\fB\\-j 1024\\fR "
            "need disk, not 50 GB of memory. Ctrl\\-C or "
            "SIGTERM stops reading, drops the downloads in flight (a resumed run redoes them), writes out what "
            "is finished and exits with 130.",
            "Processes: with \\fB\\-\\-workers\\fR N > 1 (by default one per core) a2d\\-fetch runs N "
            "worker processes sharing \\fB\\-\\-concurrency\\fR (a pool of slots, as make's jobserver: any worker "
            "may use all "
            "of it, all of them together never more): one Python process tops out "
            "near 3,000-4,000 downloads/s. The parent checks the input (errors keep their line numbers) and deals "
            "each record to the worker that owns its host (by a hash of the name), so the per\\-host cap, pauses "
            "and DNS answers hold for the whole command; the workers write whole lines to the shared standard "
            "output under a lock. This needs a real standard output (not \\fB\\-o\\fR FILE) and is off with "
            "\\fB\\-\\-ordered\\fR. Use \\fB\\-\\-workers 1\\fR when GNU parallel or xargs already runs one pipeline "
            "per core (each pipeline then has its own per\\-host cap).",
            "HTTP goes through libcurl's multi interface (pycurl) on a uvloop event loop, with one connection "
            "pool and one TLS session cache for all requests; HTTPS uses HTTP/2 where the server offers it, and "
            "a burst of requests to one host waits for its first connection to multiplex over it. "
            "\\fB\\-\\-resolve\\fR \\fIHOST:PORT:ADDRESS\\fR pins an address as curl \\fB\\-\\-resolve\\fR does "
            "(the address guard still applies). The soft limit on open files is raised as far as \\-j needs "
            "(two per download), within the hard limit.",
            "For a crawl of 100M URLs over millions of hosts: shuffle the list (grouped by host, the per\\-host "
            "cap leaves most slots idle), run \\-j 1000\\-4000 per machine, keep \\fB\\-\\-timeout\\fR at 5\\-10 s "
            "and \\fB\\-\\-retries\\fR at 1\\-2, leave the per\\-host cap on, and point \\fB\\-\\-dns\\-server\\fR "
            "at a "
            "caching resolver on the machine or in its rack (such as unbound or dnsmasq) rather than at a "
            "public one, which rate\\-limits.",
        ],
        "examples": [
            "a2d-read urls.csv | a2d-fetch -j 256 --timeout 10 --deadline 60 | a2d-write out/",
            "a2d-fetch --hash md5 --verify-hash md5:md5 records.jsonl -o fetched.jsonl",
            "a2d-read list.txt | a2d-fetch --allow-scheme s3 --header-env 'Authorization: API_TOKEN' > out.jsonl",
        ],
    },
    "write": {
        "details": [
            "Files for shard \\fIN\\fR (zero-padded to \\fB--oom-shard-count\\fR digits), img2dataset's "
            "layout. \\fIwebdataset\\fR: \\fIN.tar\\fR with members \\fIkey.ext\\fR for each payload, "
            "\\fIkey.txt\\fR for the caption, \\fIkey.json\\fR with the metadata (no payload takes those "
            "names, nor a reserved field's: a text payload is \\fIkey.payload.txt\\fR); members of a sample "
            "adjacent and sorted, plain ustar headers, mtime 0, uid/gid 0, so "
            "equal input gives byte-identical tars. \\fIfiles\\fR: a folder \\fIN/\\fR with the same "
            "files. \\fItfrecord\\fR: \\fIN.tfrecord\\fR of tf.train.Example records (\\fBkey\\fR, one bytes "
            "feature per payload extension, \\fBtxt\\fR, and every metadata field: text as bytes, integers as "
            "int64, numbers as float, lists as JSON), framed with masked CRC32C as TensorFlow reads it; needs "
            "the \\fBtfrecord\\fR extra. \\fIparquet\\fR: \\fIN.parquet\\fR holds every row with its payloads "
            "in binary columns named by extension (null for failures), written in row groups as rows arrive. "
            "\\fIdummy\\fR writes only metadata and stats.",
            "Every format also writes \\fIN.parquet\\fR with the metadata of every row including failures "
            "(for the parquet format it is the data file itself) and \\fIN_stats.json\\fR with "
            "img2dataset's counts (count, successes, failed_to_download, failed_to_subsample, duration, "
            "start_time, end_time, status_dict) plus filtered, bytes, samples, error_kinds and the shard's "
            "fingerprint. The parquet schema is the same in every shard: the reserved fields typed, the "
            "input's columns typed by the first rows written, and \\fBextra_json\\fR holding, as JSON text, "
            "whatever fits no column (a later new column, a value of another type, and in the parquet format "
            "a payload whose extension has no column, as base64; \\fB--payload-columns\\fR declares them). "
            "So DuckDB's \\fIread_parquet('out/*.parquet')\\fR and pyarrow.dataset (with "
            "exclude_invalid_files) read the whole folder. Failed and filtered rows are only in the parquet "
            "unless \\fB--keep-failed\\fR; a shard without successes still gets all its files.",
            "Every file is written under a hidden temporary name and renamed when whole (for an fsspec "
            "destination such as \\fIs3://bucket/out\\fR, written in a local scratch folder and uploaded "
            "file by file); the stats file comes last, and is removed first when a shard is redone, so a "
            "shard is finished exactly when \\fIN_stats.json\\fR exists. On error or Ctrl-C the temporary "
            "files are removed; after kill -9 they remain as hidden files that readers skip, removed when "
            "the shard is written again. Each file is synced to disk before its rename (the files format's "
            "folder with one sync of the file system), so after a power loss a published name never points "
            "at an empty file.",
            "A shard already finished in the folder is rewritten only from the same rows (a resume) or from "
            "rows it holds the first of (its input was cut short); the first record of another input that "
            "such a shard disagrees with stops a2d\\-write with status 2, before anything of it is published "
            "there, unless \\fB\\-\\-overwrite\\fR. If "
            "the input ends with another stage's abort line (that stage failed mid\\-stream), a2d\\-write "
            "publishes no shard that was not complete and exits with status 5.",
            "Records with \\fBshard\\fR and \\fBshard_size\\fR (from a2d-shard) may arrive in any order and "
            "interleaved; a shard is finished as soon as it holds \\fBshard_size\\fR rows. If input ends "
            "first, the short shards are not written and the exit status is 4. Records without a shard are "
            "numbered in arrival order with img2dataset's key formula, \\fB--number-sample-per-shard\\fR "
            "rows a shard, the last one finished at the end of input.",
            "\\fB--index\\fR writes \\fIshardindex.json\\fR, a wids shard index (\\fBshardlist\\fR of "
            "\\fBurl\\fR and \\fBnsamples\\fR) of every finished tar in the folder. When several writers "
            "share a folder, run \\fIa2d-write --index out/ < /dev/null\\fR after they finish to index them all.",
        ],
        "examples": [
            "a2d-read urls.csv | a2d-fetch | a2d-write --format webdataset out/",
            "a2d-write --format parquet --payload-columns jpg,png out/ fetched.jsonl",
            "a2d-shard urls.jsonl | a2d-fetch | a2d-write --format tfrecord s3://bucket/out/",
        ],
    },
    "subsample": {
        "details": [
            "Records pass three steps. Sampling first: \\fB\\-\\-fraction\\fR keeps a record when an xxh64 "
            "hash of its key (its URL before a2d\\-shard) and \\fB\\-\\-seed\\fR falls below the fraction, so "
            "every process and host keeps the same subset; \\fB\\-\\-max\\fR keeps the first N. Then the "
            "transforms, in worker processes (\\fB\\-w\\fR, one per core by default, fed small batches so "
            "memory stays bounded; output in input order unless \\fB\\-\\-unordered\\fR): the file type of "
            "every single payload from its first bytes (extension and \\fBmime\\fR fixed), "
            "\\fB\\-\\-max\\-bytes\\fR, then images. Last, \\fB\\-\\-where\\fR conditions on the "
            "transformed record.",
            "A record that is not kept is left out of the stream if it has no \\fBshard\\fR yet, and kept "
            "without payload as \\fBstatus: filtered\\fR (with the reason in \\fBerror_message\\fR) if it "
            "has one, so its shard's metadata still accounts for every row and the shard still reaches its "
            "\\fBshard_size\\fR. Failed records keep their failure.",
            "Images (the \\fBimage\\fR extra: Pillow) follow img2dataset's options and meanings: "
            "\\fIborder\\fR resizes the longer side and pads to a white square, \\fIkeep_ratio\\fR resizes the "
            "shorter side, \\fIkeep_ratio_largest\\fR the longer, \\fIcenter_crop\\fR the shorter side and "
            "crops the centre square, \\fIno\\fR keeps the size. Transparency is composited on white. Records "
            "get \\fBwidth\\fR, \\fBheight\\fR, \\fBoriginal_width\\fR, \\fBoriginal_height\\fR and "
            "\\fBexif\\fR. Refused images (too small, too large an area or aspect ratio, over the "
            "decompression\\-bomb limit, checked from the header before decoding) become "
            "\\fBfailed_to_subsample\\fR with \\fBerror_kind: rejected\\fR; bytes that do not decode, "
            "\\fBdecode_error\\fR. JPEGs are decoded at a reduced scale when the target is at most a third "
            "of their size. Payloads that are not images fail the same way (\\fB\\-\\-non\\-images keep\\fR passes "
            "them).",
            "Audio and video options run ffmpeg and ffprobe, which must be on PATH (apt\\-get install ffmpeg); "
            "a2d\\-subsample stops at once if they are missing. Videos are re\\-encoded to H.264 in mp4: "
            "\\fB\\-\\-video\\-size\\fR and \\fB\\-\\-video\\-resize\\-mode\\fR (scale, crop, pad) set the "
            "picture size, \\fB\\-\\-video\\-fps\\fR the frame rate, and \\fB\\-\\-audio\\-format\\fR, "
            "\\fB\\-\\-audio\\-rate\\fR and \\fB\\-\\-audio\\-channels\\fR re\\-encode the sound, turning a video "
            "into its audio track unless a video option is also given. \\fB\\-\\-clip\\-length\\fR and "
            "\\fB\\-\\-use\\-clips\\fR cut each record into one record per clip, keyed \\fIKEY_00000\\fR, "
            "\\fIKEY_00001\\fR and so on, with \\fBsource_key\\fR, \\fBclip_start\\fR, \\fBclip_end\\fR and "
            "\\fBclip_count\\fR; video clips are re\\-encoded so they are exact to the frame, lossy audio clips "
            "are copied (exact to a packet). \\fB\\-\\-detect\\-cuts\\fR gives videos a \\fBcuts\\fR field, "
            "their scenes as frame ranges from ffmpeg's scene score, and \\fB\\-\\-use\\-cuts\\fR clips them "
            "at those scenes. \\fB\\-\\-probe\\fR adds duration, width, height and "
            "video_metadata, and \\fB\\-\\-thumbnails\\fR N adds N JPEG frames as jpg, 1.jpg and so on. Media "
            "that ffmpeg cannot read become failed_to_subsample with error_kind decode_error, and calls slower "
            "than \\fB\\-\\-ffmpeg\\-timeout\\fR fail with error_kind timeout. Video work is sent to the "
            "workers one record at a time.",
        ],
        "examples": [
            "a2d-fetch < urls.jsonl | a2d-subsample --image-size 256 --resize-mode border | a2d-write out/",
            "a2d-read urls.parquet | a2d-subsample --fraction 0.01 --seed 1 | a2d-shard | a2d-fetch | a2d-write out/",
            "a2d-read out/ | a2d-subsample --where 'width >= 512' --where 'mime ~ ^image/' | a2d-write big/",
            "a2d-read videos.csv | a2d-shard | a2d-fetch | a2d-subsample --clip-length 10 --video-size 360 "
            "| a2d-write out/",
        ],
    },
    "mix": {
        "details": [
            "a2d\\-mix reads records (a2d\\-record(5)) from several inputs and writes one stream of them, each "
            "input line passed on byte for byte. An input is read only when its turn comes, so inputs may be "
            "pipes (\\fB<(a2d\\-read urls.csv)\\fR) and a mix of huge inputs starts at once, with flat memory.",
            "\\fB\\-\\-mode random\\fR (the default) takes each record from an input chosen at random, with "
            "probability proportional to its weight among the inputs that have not ended, from a generator "
            "seeded with \\fB\\-\\-seed\\fR: the same inputs and seed give the same order on every run and "
            "host. \\fB\\-\\-mode round\\-robin\\fR takes one record from each input in turn; "
            "\\fB\\-\\-mode interleave\\fR a block of records from each input in turn, of "
            "\\fB\\-\\-block\\fR records, or of each input's weight (whole numbers) when there is no "
            "\\fB\\-\\-block\\fR: \\fB\\-\\-weights 2,1\\fR gives a a b a a b ...",
            "With \\fB\\-\\-until all\\fR (the default) an input that ends leaves its share to the others, "
            "and the mix ends with the last input, so every record of every input comes out once. With "
            "\\fB\\-\\-until first\\fR the mix stops when an input ends, and the rest of the others is not "
            "read: the proportions then hold to the end of the output. The summary on standard error gives "
            "the records taken from each input. The Python class any2dataset.mix.Mixer mixes any iterators "
            "the same way, and its state_dict() resumes a mix mid\\-way.",
            "An input that ends in an abort line (its stage failed) stops the mix with status 5, and the "
            "output ends in an abort line too.",
        ],
        "examples": [
            "a2d-mix --weights 3,1 --seed 1 laion.jsonl coco.jsonl | a2d-write mixed/",
            "a2d-mix --mode round-robin -o mixed.jsonl a.jsonl b.jsonl c.jsonl",
            "a2d-read urls.csv | a2d-mix --mode interleave --block 100 --until first extra.jsonl - | a2d-shard | "
            "a2d-fetch | a2d-write out/",
        ],
    },
    "all_in_one": {
        "details": [
            "any2dataset takes img2dataset's arguments with its defaults (and any2dataset's and "
            "video2dataset's additions, such as \\fB\\-\\-clip_col\\fR), translates them into the options of "
            "the stages a2d\\-read | a2d\\-shard | a2d\\-fetch | a2d\\-subsample | a2d\\-write, checked before "
            "any work; \\fB\\-\\-pipe\\-form\\fR prints that pipeline of stage commands. "
            "With resizing (the default) it runs that pipeline, \\fB\\-\\-processes_count\\fR workers each "
            "for a2d\\-fetch and a2d\\-subsample. With \\fB\\-\\-disable_all_reencoding\\fR the stages' "
            "library functions run composed in one process per "
            "part of the shards (a2d\\-shard \\-\\-part I/P): payloads go from download to shard file as "
            "bytes, never as base64 text. The Python function any2dataset.download() takes the same arguments "
            "and does the same. There \\fB\\-\\-processes_count\\fR is the number of parts (processes), "
            "\\fB\\-\\-thread_count\\fR the downloads in flight in each. Every part reads the whole URL "
            "list and keeps its own shards; with \\fB\\-\\-url_list \\-\\fR (standard input) one part "
            "runs. Without \\fB\\-\\-disable_all_reencoding\\fR images are resized as "
            "img2dataset does (256 px, border, jpg 95).",
            "\\fB\\-\\-incremental_mode\\fR incremental (the default) skips the shards already finished in "
            "the output folder (a2d\\-shard \\-\\-skip\\-done), so running the same command again completes an "
            "interrupted dataset; overwrite removes the folder first; extend numbers new shards after the last "
            "one. \\fB\\-\\-distributor\\fR ray or pyspark runs the parts as Ray or Spark tasks; "
            "\\fB\\-\\-max_shard_retry\\fR N runs a failed part (a process or task that died) again N times, "
            "skipping the shards it finished. Arguments that would do nothing here (enable_wandb, "
            "subjob_size, save_metadata False) are refused with the reason. Boolean arguments "
            "take True or False, or stand alone for True; list arguments take a,b or [a, b].",
        ],
        "examples": [
            "any2dataset --url_list urls.txt --output_folder out --output_format webdataset --processes_count 2",
            "any2dataset --url_list urls.parquet --input_format parquet --caption_col caption "
            "--disable_all_reencoding True --output_folder s3://bucket/out",
        ],
    },
    "video2dataset": {
        "details": [
            "a2d\\-video2dataset takes video2dataset's arguments (1.3), with its defaults (output folder "
            "\\fIdataset\\fR, input format csv, output format files), and its config: a mapping of four sections, "
            "given as \\fIdefault\\fR, as the path of a YAML file (PyYAML: the video2dataset extra), or inline "
            "as a Python or JSON mapping. \\fBsubsampling\\fR: ClippingSubsampler (min_length, max_length, "
            "max_length_strategy all or first; every precision is cut exactly, by re\\-encoding), "
            "ResolutionSubsampler (video_size; resize_mode scale, scale,crop, scale,crop,pad, scale,pad or pad), "
            "FrameSubsampler (frame_rate, downsample_method fps), AudioRateSubsampler (sample_rate, "
            "n_audio_channels, encode_format), FFProbeSubsampler and CutDetectionSubsampler (cut_detection_mode, "
            "framerates, min_scene_len, cuts_are_clips; threshold over 100 as ffmpeg's scene score, so "
            "the same hard cuts are found, not always the same soft ones); the named config downsample_ml; "
            "\\fBreading\\fR: timeout (yt_args apply "
            "to video pages, which are not downloaded yet); \\fBstorage\\fR: number_sample_per_shard, "
            "oom_shard_count; \\fBdistribution\\fR: processes_count, thread_count. They become the stage "
            "commands a2d\\-read | a2d\\-shard | a2d\\-fetch | [a2d\\-subsample] | a2d\\-write \\-\\-like "
            "video2dataset, run as \\fBany2dataset\\fR(1) runs them. The Python function "
            "any2dataset.video2dataset() takes the same arguments.",
            "Keys are video2dataset's (shard and index digits from number_sample_per_shard and "
            "oom_shard_count), clips are samples keyed KEY_00000, KEY_00001 and so on, and the metadata "
            "parquet and \\fI.json\\fR members have its columns: the kept list columns, clips (each clip's own "
            "[[start, end]]), caption, url, key, status, error_message. What cannot run here is refused "
            "before any work with the reason: the stages subset, optical_flow, caption and whisper, the "
            "named config caption, RAFT optical flow, an LLM captioner, "
            "captions_are_subtitles, the slurm distributor (pyspark and ray run the parts as Spark or Ray "
            "tasks), enable_wandb.",
        ],
        "examples": [
            "a2d-video2dataset --url_list videos.csv --caption_col caption --output_format webdataset "
            "--output_folder dataset",
            "a2d-video2dataset --url_list videos.parquet --input_format parquet --clip_col clips --config config.yaml",
        ],
    },
    "stats": {
        "details": [
            "On a stream (INPUT files or standard input) a2d\\-stats counts records by \\fBstatus\\fR and "
            "\\fBerror_kind\\fR, lists the commonest \\fBerror_message\\fRs, and measures bytes, payload sizes "
            "(the \\fBsize\\fR field, else the length of the base64 payloads, measured without decoding them) "
            "and records per second. Memory stays flat: sizes go into a histogram with four bins per power "
            "of two, so p50, p90 and p99 are estimates within 25% (count, min, max and mean are exact), and "
            "only the first 1000 distinct error messages are counted. With \\fB\\-\\-tee\\fR the input lines go "
            "to standard output byte for byte and the report to standard error.",
            "A single folder argument, local or an fsspec URL such as \\fIs3://bucket/out\\fR, is read as a "
            "dataset written by a2d\\-write. A shard is complete exactly when \\fIN_stats.json\\fR exists; "
            "incomplete when it has other files (\\fIN.tar\\fR, \\fIN.parquet\\fR, a folder, hidden "
            "temporaries) but no stats; missing when a number between \\fB\\-\\-first\\-shard\\fR and the "
            "highest shard has no file at all. Totals cover complete shards and come from their metadata "
            "parquet (only the status, error_kind, error_message and size columns are read); a "
            "\\fI_stats.json\\fR that disagrees with its parquet is reported as a warning.",
            "\\fB\\-\\-json\\fR prints one JSON object whose keys are listed in the docstring of "
            "\\fIany2dataset/stats/__init__.py\\fR; \\fB\\-\\-html\\fR writes one self\\-contained page with "
            "inline SVG "
            "charts (statuses, error kinds, payload sizes, throughput) and no scripts or network resources.",
        ],
        "examples": [
            "a2d-read urls.csv | a2d-fetch | a2d-stats --tee | a2d-write out/",
            "a2d-stats out/",
            "a2d-stats --json s3://bucket/out/ | jq .shards",
            "a2d-stats --html report.html fetched.jsonl",
        ],
    },
}


def roff(text: str) -> str:
    """Escape plain text for roff: backslashes, hyphens, and leading dots or quotes."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line for line in text.split("\n"))


def option_lines(param: click.Option, ctx: click.Context) -> list[str]:
    names = ", ".join(f"\\fB{roff(n)}\\fR" for n in param.opts)
    if param.secondary_opts:
        names += " / " + ", ".join(f"\\fB{roff(n)}\\fR" for n in param.secondary_opts)
    metavar = "" if param.is_flag else f" \\fI{roff(param.make_metavar(ctx))}\\fR"
    text = param.help or ""
    if param.show_default and param.default is not None and not param.is_flag:
        text += f" Default: {param.default}."
    return [".TP", names + metavar, roff(text)]


def page(module_name: str) -> str:
    command: click.Command = importlib.import_module(f"any2dataset.commands.{module_name}").main
    ctx = click.Context(command, info_name=command.name)
    name = command.name
    usage = " ".join(command.collect_usage_pieces(ctx))
    out = [
        f'.TH {name.upper()} 1 "" "any2dataset {__version__}" "any2dataset manual"',
        ".SH NAME",
        f"{roff(name)} \\- {roff(command.short_help)}",
        ".SH SYNOPSIS",
        f".B {roff(name)}",
        roff(usage),
        ".SH DESCRIPTION",
        roff(command.help),
    ]
    for paragraph in PROSE[module_name]["details"]:
        out += [".PP", paragraph]
    out.append(".SH OPTIONS")
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            out += option_lines(param, ctx)
    out.append(".SH EXIT STATUS")
    for code, meaning in EXIT_STATUS:
        out += [f".IP {code} 5", meaning]
    out.append(".SH EXAMPLES")
    for example in PROSE[module_name]["examples"]:
        out += [".PP", ".nf", f"\\fB{roff(example)}\\fR", ".fi"]
    others = ", ".join(f"{roff(command_name(other))}(1)" for other in COMMANDS if other != module_name)
    out += [".SH SEE ALSO", f"{others}, a2d\\-record(5)", ""]
    return "\n".join(out)


def command_name(module_name: str) -> str:
    return importlib.import_module(f"any2dataset.commands.{module_name}").main.name


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for module_name in COMMANDS:
        text = page(module_name)
        path = ROOT / "man" / f"{command_name(module_name)}.1"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python docs/make_man.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
