#!/usr/bin/env python3
"""Proxy benchmark: keep-alive HTTP/1.1 with 1 KB responses, at a fixed rate
and at maximum throughput, in four set-ups measured in the same run:

  direct   oha → app
  server   oha (client certificate) → ibac proxy (mTLS, decides) → app
  pair     oha → ibac client proxy → mTLS → ibac server proxy → app
  nginx    oha (client certificate) → nginx (mTLS, `map` authorization) → app

The proxies under test run on core 1; oha and the app on core 0. For each
set-up it prints latency added to `direct` (p50, p99), throughput, the proxy's
CPU-seconds per 1,000 requests (utime+stime from /proc), and peak RSS (VmHWM),
with ratios to nginx.

Needs: oha (`cargo install oha --locked`), nginx (`apt-get install
nginx-light`), taskset. Run from the repository root:

    benches/proxy/run.py [--rate 1000] [--seconds 10]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IBAC = ROOT / "target" / "release" / "ibac"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port} after {timeout} s")


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def peak_rss_mb(pids):
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def children_of(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class Processes:
    def __init__(self):
        self.procs = []

    def start(self, args, core=None, **kwargs):
        if core is not None:
            args = ["taskset", "-c", str(core)] + args
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self):
        for p in self.procs:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def oha(url, args, tls, rate, seconds):
    cmd = ["taskset", "-c", "0", "oha", "--no-tui", "--output-format", "json", "-z", f"{seconds}s"]
    if rate:
        cmd += ["-q", str(rate), "--latency-correction", "-c", "16"]
    else:
        cmd += ["-c", "16"]
    if tls:
        cmd += ["--insecure", "--cert", tls[0], "--key", tls[1]]
    out = subprocess.run(cmd + args + [url], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"oha failed: {out.stderr}")
    data = json.loads(out.stdout)
    codes = data.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    if ok == 0 or ok != sum(codes.values()):
        curl = ["curl", "-sk", url] + (["--cert", tls[0], "--key", tls[1]] if tls else [])
        body = subprocess.run(curl, capture_output=True, text=True).stdout
        sys.exit(f"{url}: non-2xx answers {codes}: {body.strip()}")
    lat = data["latencyPercentiles"]
    return {
        "p50": lat["p50"] * 1e3,
        "p99": lat["p99"] * 1e3,
        "rps": data["summary"]["requestsPerSec"],
        "requests": ok,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    opts = parser.parse_args()
    for tool in ("oha", "nginx", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: cargo install oha --locked; apt-get install nginx-light util-linux")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ibac"], cwd=ROOT, check=True)

    work = Path(tempfile.mkdtemp(prefix="ibac-bench-"))
    procs = Processes()
    try:
        run(work, procs, opts)
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


def ibac(work, *args):
    return subprocess.run([str(IBAC), *args], cwd=work, check=True, capture_output=True, text=True).stdout.strip()


def run(work, procs, opts):
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    (work / "www").mkdir()
    (work / "www" / "data").write_bytes(b"x" * 1024)
    app_port = free_port()
    (work / "app.conf").write_text(f"""
worker_processes 1; pid {work}/app.pid; error_log {work}/app.err;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{app_port}; root {work}/www; }} }}
""")
    procs.start(["nginx", "-c", str(work / "app.conf"), "-g", "daemon off;"], core=0)
    wait_port(app_port)

    ibac(work, "ca", "init")
    issuer_port = free_port()
    procs.start([str(IBAC), "ca", "serve", "--listen", f"127.0.0.1:{issuer_port}", "--rate", "0"], cwd=work, core=0)
    wait_port(issuer_port)
    issuer = f"https://127.0.0.1:{issuer_port}"
    ibac(work, "ca", "issue", "web.bench", "--out", "client")
    ibac(work, "ca", "issue", "nginx.bench", "--out", "nginx")
    (work / "ca.pem").write_text(ibac(work, "ca", "bundle") + "\n")
    (work / "policy").mkdir()
    # web may GET /data on api, a protected service, in namespace bench.
    shutil.copy(Path(__file__).with_name("intents.yaml"), work / "policy" / "intents.yaml")

    server_port, client_port = free_port(), free_port()
    (work / "discovery.yaml").write_text(f"workloads:\n  api.bench: 127.0.0.1:{server_port}\n")
    server = procs.start([str(IBAC), "proxy", "--issuer", issuer, "--identity-dir", "api-id", "--token", ibac(work, "ca", "token", "api.bench"),
                          "--listen", f"127.0.0.1:{server_port}", "--app", f"127.0.0.1:{app_port}", "--policy", "policy"], cwd=work, core=1)
    client = procs.start([str(IBAC), "proxy", "--issuer", issuer, "--identity-dir", "web-id", "--token", ibac(work, "ca", "token", "web.bench"),
                          "--outbound-tcp", f"api.bench=127.0.0.1:{client_port}", "--discovery", "discovery.yaml"], cwd=work, core=1)
    wait_port(server_port)
    wait_port(client_port)

    nginx_port = free_port()
    (work / "nginx.conf").write_text(f"""
worker_processes 1; pid {work}/nginx.pid; error_log {work}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000;
  map "$request_method:$uri:$ssl_client_s_dn" $allowed {{ default 0; "~^GET:/data:CN=web\\.bench$" 1; }}
  upstream app {{ server 127.0.0.1:{app_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{nginx_port} ssl;
    ssl_certificate {work}/nginx/svid.pem; ssl_certificate_key {work}/nginx/svid-key.pem;
    ssl_client_certificate {work}/ca.pem; ssl_verify_client on; ssl_protocols TLSv1.3;
    location / {{
      if ($allowed = 0) {{ return 403; }}
      proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://app;
    }}
  }} }}
""")
    nginx = procs.start(["nginx", "-c", str(work / "nginx.conf"), "-g", "daemon off;"], core=1)
    wait_port(nginx_port)
    nginx_pids = [nginx.pid] + children_of(nginx.pid)

    tls = (str(work / "client" / "svid.pem"), str(work / "client" / "svid-key.pem"))
    setups = [
        ("direct", f"http://127.0.0.1:{app_port}/data", None, []),
        ("server", f"https://127.0.0.1:{server_port}/data", tls, [server.pid]),
        ("pair", f"http://127.0.0.1:{client_port}/data", None, [server.pid, client.pid]),
        ("nginx", f"https://127.0.0.1:{nginx_port}/data", tls, nginx_pids),
    ]
    results = {}
    for name, url, cert, pids in setups:
        oha(url, [], cert, 0, 2)  # warm up
        before = cpu_seconds(pids) if pids else 0
        fixed = oha(url, [], cert, opts.rate, opts.seconds)
        cpu_fixed = cpu_seconds(pids) - before if pids else 0
        top = oha(url, [], cert, 0, opts.seconds)
        results[name] = {
            "fixed": fixed,
            "max": top,
            "cpu_per_1k": 1000 * cpu_fixed / fixed["requests"] if pids else 0,
            "rss": peak_rss_mb(pids) if pids else 0,
        }

    direct = results["direct"]["fixed"]
    print(f"\nibac proxy benchmark — keep-alive HTTP/1.1, 1 KB responses; {opts.rate} req/s for {opts.seconds} s, then max (16 connections)")
    print("proxies on core 1, oha and the app on core 0; one run, this machine\n")
    print(f"{'set-up':<8} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'+p99 ms':>8} {'max req/s':>10} {'CPU-s/1k':>9} {'RSS MB':>7}")
    for name, r in results.items():
        f = r["fixed"]
        added = "" if name == "direct" else f"{f['p50'] - direct['p50']:>8.3f} {f['p99'] - direct['p99']:>8.3f}"
        print(f"{name:<8} {f['p50']:>8.3f} {f['p99']:>8.3f} {added:>17} {r['max']['rps']:>10.0f} {r['cpu_per_1k']:>9.4f} {r['rss']:>7.1f}")
    n = results["nginx"]
    n_add = n["fixed"]["p50"] - direct["p50"]
    print("\nratios to nginx (lower is better for latency, CPU and memory):")
    for name in ("server", "pair"):
        r = results[name]
        add = r["fixed"]["p50"] - direct["p50"]
        print(f"  {name:<6} added p50 {add / n_add if n_add > 0 else float('nan'):.2f}×, CPU/1k {r['cpu_per_1k'] / n['cpu_per_1k']:.2f}×, "
              f"max throughput {r['max']['rps'] / n['max']['rps']:.2f}×, RSS {r['rss'] / n['rss']:.2f}×")


if __name__ == "__main__":
    main()
