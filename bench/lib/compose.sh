# Shared by the benches that put docker-compose beside envctl. The caller sets `work` (a
# scratch folder), `count`, `prefix` (the /24's first three octets; machine i is at
# .10+i), `project` (compose's project and container name prefix), and leaves, for each
# init mode it uses, `$work/inspect-MODE.json` (`docker inspect` of a container envctl
# made) and, for systemd, `$work/ssh-dropin.conf` (envctl's ssh unit drop-in).
#
# The compose file follows the provider: command, environment, stop signal and grace
# period, tmpfs, cgroup parent, CPU and memory limits, hostname, address and aliases. Two
# things differ, because compose cannot do them the same way: the keys (and, for
# systemd, envctl's ssh unit drop-in) are bind-mounted read-only instead of copied in
# before the first start, and, as docker-compose 1.29 cannot ask for a private cgroup
# namespace, systemd gets the common recipe's read-only bind of /sys/fs/cgroup instead
# of envctl's one writable subtree (the same work for systemd; less isolation, see
# README).

now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }
elapsed() { calc "$(now) - $1"; }
median() { python3 -c "import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }

ensure_compose() {
    if ! command -v docker-compose >/dev/null; then
        echo "bench: installing Debian's docker-compose" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
    fi
}

compose() { docker-compose --project-name "$project" --file "$work/compose.yml" "$@"; }

compose_keys() { # the keys compose's machines get: one client key, a host key per machine
    ssh-keygen -q -t ed25519 -N '' -C bench -f "$work/id"
    : > "$work/known_hosts"
    for i in $(seq 1 "$count"); do
        mkdir -p "$work/keys/m$i"
        ssh-keygen -q -t ed25519 -N '' -C '' -f "$work/keys/m$i/ssh_host_ed25519_key"
        cp "$work/id.pub" "$work/keys/m$i/authorized_key"
        chmod 0644 "$work/keys/m$i/authorized_key"
        echo "$prefix.$((10 + i)) $(cut -d' ' -f1-2 "$work/keys/m$i/ssh_host_ed25519_key.pub")" >> "$work/known_hosts"
    done
}

write_compose() { # MODE
    python3 - "$1" "$count" "$prefix" "$work" "$project" <<'EOF'
import json, sys
mode, count, prefix, work, project = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
c = json.load(open(f"{work}/inspect-{mode}.json"))[0]
config, host = c["Config"], c["HostConfig"]
services = {}
for i in range(1, count + 1):
    keys = f"{work}/keys/m{i}"
    volumes = [
        f"{keys}/ssh_host_ed25519_key:/etc/ssh/ssh_host_ed25519_key:ro",
        f"{keys}/ssh_host_ed25519_key.pub:/etc/ssh/ssh_host_ed25519_key.pub:ro",
        f"{keys}/authorized_key:/etc/ssh/authorized_keys/vagrant:ro",
    ]
    service = {
        "image": config["Image"],
        "container_name": f"{project}-m{i}",
        "hostname": f"m{i}",
        "domainname": "bench.test",
        "command": config["Cmd"],
        "environment": [e for e in config.get("Env") or [] if not e.startswith("PATH=")],
        "stop_signal": config.get("StopSignal") or "SIGTERM",
        "cpus": host["NanoCpus"] / 1e9,
        "mem_limit": host["Memory"],
        "networks": {"net": {"ipv4_address": f"{prefix}.{10 + i}",
                             "aliases": [f"m{i}", f"m{i}.bench.test"]}},
        "volumes": volumes,
    }
    if config.get("StopTimeout") is not None:
        service["stop_grace_period"] = f"{config['StopTimeout']}s"
    if host.get("Tmpfs"):
        service["tmpfs"] = [f"{path}:{opts}" for path, opts in sorted(host["Tmpfs"].items())]
    if mode == "systemd":
        service["cgroup_parent"] = f"/{project}_m{i}"
        volumes.append("/sys/fs/cgroup:/sys/fs/cgroup:ro")
        for unit in ("ssh", "sshd"):
            volumes.append(f"{work}/ssh-dropin.conf:/etc/systemd/system/{unit}.service.d/envctl.conf:ro")
    services[f"m{i}"] = service
compose = {
    "version": "2.4",
    "services": services,
    "networks": {"net": {"ipam": {"config": [{"subnet": f"{prefix}.0/24",
                                              "gateway": f"{prefix}.1"}]}}},
}
json.dump(compose, open(f"{work}/compose.yml", "w"), indent=1)  # JSON is YAML
EOF
}

ssh_to() { # IP COMMAND...
    local ip=$1
    shift
    ssh -F /dev/null -i "$work/id" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=2 \
        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts" -o LogLevel=ERROR \
        "vagrant@$ip" "$@"
}

ready_one() { # MODE IP: until it answers SSH (and, for systemd, has finished booting)
    local state
    while true; do
        if [ "$1" = systemd ]; then
            state=$(ssh_to "$2" systemctl is-system-running --wait 2>/dev/null || true)
            case $state in running | degraded) return ;; esac
        elif ssh_to "$2" true 2>/dev/null; then
            return
        fi
        sleep 0.1
    done
}

