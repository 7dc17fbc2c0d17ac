#!/usr/bin/env bash
# cluster.sh runs a one-node Kubernetes on this machine from real components, in the
# manner of Kubernetes' own hack/local-up-cluster.sh: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet and kube-proxy as host processes
# (built once from the Go module proxy by hack/kube-tools.sh, which pins every
# version); containerd, runc and the CNI plugins from Debian; CoreDNS and
# metrics-server as pods in kube-system; kube-router's firewall enforcing
# NetworkPolicies. Nothing is pulled: every image is built here and imported.
#
#   hack/cluster.sh up                start it (stopping any earlier one first) and wait
#                                     until the node is Ready, DNS answers, metrics are
#                                     served and NetworkPolicies are enforced
#   hack/cluster.sh down              stop everything and put the machine back as it was,
#                                     but for `unreachable` routes for the cluster's two
#                                     ranges (a client still running must not reach the
#                                     default gateway); safe to run twice, and whatever
#                                     state `up` died in
#   hack/cluster.sh env               print the export lines to use it:
#                                     eval "$(hack/cluster.sh env)"; kubectl get pods -A
#   hack/cluster.sh load-image FILE…  import docker-archive tarballs into its containerd
#
# Traffic stays on this machine. Pods live on the bridge kshop0 (10.213.0.0/24, the
# host is 10.213.0.1) and Services in 10.214.0.0/24; pods reach each other and the
# host's bridge address only: chains of ours drop anything else before routing,
# anything forwarded between kshop0 and another interface, and the host's own
# connections to a cluster address that would leave by another interface (a
# Service naming an outside endpoint); only kshop0 forwards at all; nothing is
# masqueraded out; CoreDNS answers for the cluster's own names and never asks an
# upstream resolver.
#
# Everything it writes lives in $KSHOP_CLUSTER_DIR (default $KSHOP_CACHE_DIR/cluster),
# wiped at `up`; the logs of every component stay there after `down`.
# Needs root (network, mounts, cgroups).
# -E: the ERR trap that reports a failed step of `up` fires inside functions too.
set -Eeuo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$HACK_DIR")"
# shellcheck source=hack/cachedir.sh
source "$HACK_DIR/cachedir.sh"

STATE="${KSHOP_CLUSTER_DIR:-$KSHOP_CACHE_DIR/cluster}"
BRIDGE=kshop0
HOST_IP=10.213.0.1
POD_CIDR=10.213.0.0/24
SERVICE_CIDR=10.214.0.0/24
KUBERNETES_SERVICE_IP=10.214.0.1
DNS_SERVICE_IP=10.214.0.10
DNS_DOMAIN=cluster.local
# Reverse zones CoreDNS answers for: the pod and Service /24s.
REVERSE_ZONES="0.213.10.in-addr.arpa 0.214.10.in-addr.arpa"
NODE_NAME=kshop-node
CONTEXT=kshop-local
API_SERVER="https://$HOST_IP:6443"
# etcd on loopback, on ports below Linux's ephemeral range (so no outgoing
# connection can hold them), away from etcd's defaults (another etcd may run) and
# from make chaos's servers (12xx2, 12379).
ETCD_CLIENT_URL=http://127.0.0.1:12479
ETCD_PEER_URL=http://127.0.0.1:12480

PKI="$STATE/pki"
CONF="$STATE/config"
LOGS="$STATE/logs"
RUN="$STATE/run"
SAVED="$STATE/saved" # the machine's state before `up`, put back by `down`
CONTAINERD_DIR="$STATE/containerd"
CONTAINERD_SOCK="$CONTAINERD_DIR/containerd.sock"
KUBELET_DIR="$STATE/kubelet"
POD_LOGS="$STATE/pod-logs"
KUBECONFIG_ADMIN="$STATE/kubeconfig"

# Host settings the components change (the kubelet sets the vm./kernel. ones) and
# that `down` puts back as `up` found them.
SYSCTLS=(
	net.ipv4.ip_forward net.ipv4.conf.all.route_localnet
	net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
	vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes
)
# Daemons in the order `up` starts them; `down` stops them in reverse.
DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy kube-router)

log() { printf 'cluster: %s\n' "$*" >&2; }
die() {
	printf 'cluster: error: %s\n' "$*" >&2
	exit 1
}
need_root() { [ "$(id -u)" = 0 ] || die "run as root: the cluster changes the network, mounts and cgroups"; }
have() { command -v "$1" >/dev/null 2>&1; }

kubectl() { "$KUBE_BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
ctr_k8s() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# wait_for DESCRIPTION SECONDS DAEMON COMMAND...: poll until COMMAND succeeds;
# fail at once if DAEMON (the process that should make it succeed) exits. "-"
# names no daemon.
wait_for() {
	local what=$1 seconds=$2 daemon=$3 deadline
	shift 3
	deadline=$((SECONDS + seconds))
	until "$@" >/dev/null 2>&1; do
		if [ "$daemon" != - ] && ! daemon_alive "$daemon"; then
			log "$daemon exited while waiting for $what; see $LOGS/$daemon.log"
			return 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			log "timed out after ${seconds}s waiting for $what"
			return 1
		fi
		sleep 0.5
	done
}

# ---------------------------------------------------------------------------
# up

# The step running now and the logs that explain its failure.
CURRENT_STEP=""
CURRENT_LOGS=""

# step NAME LOGS FUNCTION: run one step of `up`, then print its time.
step() {
	local name=$1 logs=$2 fn=$3 start ms
	CURRENT_STEP=$name CURRENT_LOGS=$logs
	start=$(date +%s%N)
	"$fn"
	ms=$((($(date +%s%N) - start) / 1000000))
	printf 'cluster: %-62s %4d.%ds\n' "$name" $((ms / 1000)) $((ms % 1000 / 100)) >&2
}

# The bridge carries the API server's address: without it, a client of the
# cluster would send its connection to the default gateway instead.
bridge_up() { ip -4 addr show dev "$BRIDGE" 2>/dev/null | grep -qF " $HOST_IP/"; }

on_up_failure() {
	local status=$? name
	trap - ERR
	set +e
	log "step failed: $CURRENT_STEP"
	for name in $CURRENT_LOGS; do
		if [ -s "$LOGS/$name.log" ]; then
			printf '\n--- last lines of %s ---\n' "$LOGS/$name.log" >&2
			tail -n 25 "$LOGS/$name.log" >&2
		fi
	done
	if [ -n "${KUBE_BIN_DIR:-}" ] && [ -f "$KUBECONFIG_ADMIN" ] && bridge_up && kubectl get --raw /readyz >/dev/null 2>&1; then
		printf '\n--- pods and recent events ---\n' >&2
		kubectl get pods -A -o wide >&2
		kubectl get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -n 15 >&2
	fi
	printf '\n' >&2
	log "every component's log is in $LOGS; the cluster is left as it is: run hack/cluster.sh down to clean up"
	exit "$status"
}

ensure_packages() {
	local missing=()
	have containerd || missing+=(containerd)
	have runc || missing+=(runc)
	[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] ||
		missing+=(containernetworking-plugins)
	have iptables || missing+=(iptables)
	have ipset || missing+=(ipset)
	have conntrack || missing+=(conntrack)
	have nft || missing+=(nftables)
	have ip || missing+=(iproute2)
	have openssl || missing+=(openssl)
	have gcc || missing+=(gcc) # the pause binary
	# pause links statically: that needs glibc's static library.
	dpkg -s libc6-dev >/dev/null 2>&1 || missing+=(libc6-dev)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]} from Debian packages (once, about a minute)"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
	# Bridged pod-to-pod traffic must pass iptables (Service replies, NetworkPolicies).
	[ -d /proc/sys/net/bridge ] || modprobe br_netfilter 2>/dev/null ||
		die "the kernel's bridge netfilter (br_netfilter) is not available"
	grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
		die "the kernel has no overlay filesystem, which containerd's snapshotter needs"
}

build_components() {
	local assignments
	assignments="$("$HACK_DIR/kube-tools.sh" cluster)"
	eval "$assignments"
}

# save_host_state records what `down` must restore or may remove: sysctls, which
# nftables tables and network namespaces exist, and folders the node creates
# outside $STATE when they are missing.
save_host_state() {
	local key dir
	# Wipe only a folder this script made (KSHOP_CLUSTER_DIR may point anywhere),
	# and never across a mount point.
	if [ -d "$STATE" ] && [ ! -f "$STATE/.kshop-cluster" ] && [ -n "$(ls -A "$STATE")" ]; then
		die "$STATE is not empty and was not made by hack/cluster.sh; set KSHOP_CLUSTER_DIR to a new folder"
	fi
	rm -rf --one-file-system "$STATE"
	mkdir -p "$SAVED" "$PKI" "$CONF" "$LOGS" "$RUN" "$STATE/bin" "$STATE/images"
	touch "$STATE/.kshop-cluster"
	for key in "${SYSCTLS[@]}"; do
		if [ -e "/proc/sys/${key//.//}" ]; then printf '%s=%s\n' "$key" "$(sysctl -n "$key")"; fi
	done >"$SAVED/sysctl.conf"
	nft list tables >"$SAVED/nft-tables" 2>/dev/null || true
	ip netns list 2>/dev/null | awk '{print $1}' >"$SAVED/netns"
	: >"$SAVED/created-dirs"
	for dir in /var/log/containers /var/lib/cni /run/netns /var/lib/kubelet /usr/libexec/kubernetes; do
		[ -d "$dir" ] || echo "$dir" >>"$SAVED/created-dirs"
	done
}

setup_network() {
	# The routes `down` leaves (see there) would shadow the bridge's.
	ip route del unreachable "$POD_CIDR" 2>/dev/null || true
	ip route del unreachable "$SERVICE_CIDR" 2>/dev/null || true
	ip link add "$BRIDGE" type bridge
	# No IPv6 on the bridge: the host gets no link-local address pods could reach.
	sysctl -qw "net.ipv6.conf.$BRIDGE.disable_ipv6=1"
	ip addr add "$HOST_IP/24" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	# The host reaches Services through the bridge, from its bridge address: a
	# Service address never goes to the default gateway, even without endpoints.
	ip route add "$SERVICE_CIDR" dev "$BRIDGE" src "$HOST_IP"
	# Forwarding on the bridge only (pod to Service to pod needs routing); the
	# machine-wide switch stays as it was, so nothing arriving elsewhere is routed.
	sysctl -qw "net.ipv4.conf.$BRIDGE.forwarding=1"
	sysctl -qw net.bridge.bridge-nf-call-iptables=1

	# Pods reach only pod and Service addresses: checked before routing and before
	# kube-proxy's NAT (raw table), so no rule of kube-proxy or kube-router can
	# bypass it. A pod's connection to the host's other addresses is dropped too.
	iptables -t raw -N KSHOP-ISOLATION
	iptables -t raw -A KSHOP-ISOLATION -i "$BRIDGE" -d "$POD_CIDR" -j RETURN
	iptables -t raw -A KSHOP-ISOLATION -i "$BRIDGE" -d "$SERVICE_CIDR" -j RETURN
	iptables -t raw -A KSHOP-ISOLATION -i "$BRIDGE" -m comment --comment "kshop cluster: pods reach only the cluster's addresses" -j DROP
	iptables -t raw -I PREROUTING 1 -j KSHOP-ISOLATION
	# Nothing is forwarded between the bridge and any other interface, whatever
	# NAT a Service applied (mangle runs before the filter table's FORWARD rules,
	# which kube-proxy and kube-router manage).
	iptables -t mangle -N KSHOP-ISOLATION
	iptables -t mangle -A KSHOP-ISOLATION -i "$BRIDGE" ! -o "$BRIDGE" -m comment --comment "kshop cluster: nothing leaves the bridge" -j DROP
	iptables -t mangle -A KSHOP-ISOLATION ! -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "kshop cluster: nothing enters the bridge" -j DROP
	iptables -t mangle -I FORWARD 1 -j KSHOP-ISOLATION
	# The host's own connections to a cluster address (a Service, a NodePort) leave
	# through the bridge or loopback only, whatever endpoint a Service names.
	iptables -t mangle -N KSHOP-ISOLATION-OUT
	iptables -t mangle -A KSHOP-ISOLATION-OUT -o "$BRIDGE" -j RETURN
	iptables -t mangle -A KSHOP-ISOLATION-OUT -o lo -j RETURN
	iptables -t mangle -A KSHOP-ISOLATION-OUT -m conntrack --ctorigdst "$POD_CIDR" -m comment --comment "kshop cluster: cluster addresses stay on the machine" -j DROP
	iptables -t mangle -A KSHOP-ISOLATION-OUT -m conntrack --ctorigdst "$SERVICE_CIDR" -m comment --comment "kshop cluster: cluster addresses stay on the machine" -j DROP
	iptables -t mangle -I POSTROUTING 1 -j KSHOP-ISOLATION-OUT

	mkdir -p "$CONF/cni" "$STATE/cni/ipam"
	# isGateway false: the bridge's address is ours (above), and the plugin would
	# otherwise switch on forwarding machine-wide. No ipMasq: pod traffic is never
	# masqueraded. The default route sends anything off-cluster to the host, where
	# the rules above drop it.
	cat >"$CONF/cni/10-kshop.conflist" <<-EOF
		{
		  "cniVersion": "1.0.0",
		  "name": "kshop",
		  "plugins": [
		    {
		      "type": "bridge",
		      "bridge": "$BRIDGE",
		      "isGateway": false,
		      "ipMasq": false,
		      "hairpinMode": true,
		      "ipam": {
		        "type": "host-local",
		        "dataDir": "$STATE/cni/ipam",
		        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$HOST_IP"}]],
		        "routes": [{"dst": "0.0.0.0/0"}]
		      }
		    }
		  ]
		}
	EOF
	# Pods never learn the host's resolver: this file is what the kubelet gives
	# them as "the node's" DNS settings (CoreDNS's own pod included).
	printf '# kshop test cluster: no upstream resolver; pods resolve cluster names only\n' >"$CONF/resolv.conf"
}

# --- certificates (openssl), valid for 30 days; a new set at every `up`

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

new_ca() { # name common-name
	new_key "$PKI/$1.key"
	openssl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days 30 -sha256 \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
		-out "$PKI/$1.crt" 2>/dev/null
}

new_cert() { # name ca subject serverAuth|clientAuth [subjectAltName]
	local name=$1 ca=$2 subject=$3 usage=$4 san=${5:-}
	new_key "$PKI/$name.key"
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature"
		echo "extendedKeyUsage=$usage"
		[ -z "$san" ] || echo "subjectAltName=$san"
	} >"$PKI/$name.ext"
	openssl req -new -key "$PKI/$name.key" -subj "$subject" 2>/dev/null |
		openssl x509 -req -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -set_serial "0x$(openssl rand -hex 16)" \
			-days 30 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
	rm -f "$PKI/$name.ext"
}

write_kubeconfig() { # file cert-name user
	cat >"$1" <<-EOF
		apiVersion: v1
		kind: Config
		clusters:
		- name: $CONTEXT
		  cluster:
		    server: $API_SERVER
		    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
		users:
		- name: $3
		  user:
		    client-certificate-data: $(base64 -w0 <"$PKI/$2.crt")
		    client-key-data: $(base64 -w0 <"$PKI/$2.key")
		contexts:
		- name: $CONTEXT
		  context: {cluster: $CONTEXT, user: $3}
		current-context: $CONTEXT
	EOF
	chmod 600 "$1"
}

make_certificates() {
	new_ca ca kshop-cluster-ca
	new_cert kube-apiserver ca /CN=kube-apiserver serverAuth \
		"IP:$HOST_IP,IP:$KUBERNETES_SERVICE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$DNS_DOMAIN,DNS:localhost"
	new_cert kubelet-serving ca "/CN=$NODE_NAME" serverAuth "IP:$HOST_IP,DNS:$NODE_NAME"
	new_cert metrics-server ca /CN=metrics-server serverAuth \
		"DNS:metrics-server.kube-system.svc,DNS:metrics-server.kube-system.svc.$DNS_DOMAIN"
	new_cert admin ca /O=system:masters/CN=kshop-admin clientAuth
	new_cert apiserver-kubelet-client ca /CN=kube-apiserver-kubelet-client clientAuth
	new_cert kubelet ca "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
	new_cert kube-controller-manager ca /CN=system:kube-controller-manager clientAuth
	new_cert kube-scheduler ca /CN=system:kube-scheduler clientAuth
	new_cert kube-proxy ca /CN=system:kube-proxy clientAuth
	new_cert kube-router ca /CN=kshop:kube-router clientAuth
	# The aggregation layer (metrics.k8s.io): the API server proxies requests to
	# metrics-server with this client certificate and the user in headers.
	new_ca front-proxy-ca kshop-front-proxy-ca
	new_cert front-proxy-client front-proxy-ca /CN=front-proxy-client clientAuth
	# The key that signs service account tokens.
	new_key "$PKI/service-account.key"
	openssl pkey -in "$PKI/service-account.key" -pubout -out "$PKI/service-account.pub" 2>/dev/null
	chmod 600 "$PKI"/*.key

	write_kubeconfig "$KUBECONFIG_ADMIN" admin kshop-admin
	local name
	for name in kubelet kube-controller-manager kube-scheduler kube-proxy kube-router; do
		write_kubeconfig "$CONF/$name.kubeconfig" "$name" "$name"
	done
	ln -sf "$KUBE_BIN_DIR/kubectl" "$STATE/bin/kubectl"
}

# --- processes

# start_daemon NAME COMMAND...: run COMMAND in its own session (it outlives this
# script), log to $LOGS/NAME.log, remember its pid and binary for `down`.
start_daemon() {
	local name=$1 bin
	shift
	bin="$(readlink -f "$(command -v "$1")")"
	setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
	printf '%s %s\n' "$!" "$bin" >"$RUN/$name.pid"
}

daemon_alive() { # name
	local pid bin
	[ -f "$RUN/$1.pid" ] || return 1
	read -r pid bin <"$RUN/$1.pid"
	[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$bin" ]
}

start_etcd() {
	start_daemon etcd "$KUBE_BIN_DIR/etcd" --name kshop --data-dir "$STATE/etcd" \
		--listen-client-urls "$ETCD_CLIENT_URL" --advertise-client-urls "$ETCD_CLIENT_URL" \
		--listen-peer-urls "$ETCD_PEER_URL" --initial-advertise-peer-urls "$ETCD_PEER_URL" \
		--initial-cluster "kshop=$ETCD_PEER_URL" \
		--unsafe-no-fsync --log-level warn
	# --unsafe-no-fsync: the data lives as long as the cluster; fsync on every write
	# would only slow the API server on a shared disk.
	wait_for "etcd to serve" 30 etcd curl -fsS "$ETCD_CLIENT_URL/health"
}

start_apiserver() {
	start_daemon kube-apiserver "$KUBE_BIN_DIR/kube-apiserver" \
		--etcd-servers "$ETCD_CLIENT_URL" \
		--bind-address "$HOST_IP" --advertise-address "$HOST_IP" --secure-port 6443 \
		--tls-cert-file "$PKI/kube-apiserver.crt" --tls-private-key-file "$PKI/kube-apiserver.key" \
		--client-ca-file "$PKI/ca.crt" \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--service-account-issuer "https://kubernetes.default.svc.$DNS_DOMAIN" \
		--service-account-key-file "$PKI/service-account.pub" \
		--service-account-signing-key-file "$PKI/service-account.key" \
		--authorization-mode Node,RBAC \
		--enable-admission-plugins NodeRestriction \
		--kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority "$PKI/ca.crt" \
		--kubelet-preferred-address-types InternalIP \
		--requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
		--requestheader-allowed-names front-proxy-client \
		--requestheader-username-headers X-Remote-User \
		--requestheader-group-headers X-Remote-Group \
		--requestheader-extra-headers-prefix X-Remote-Extra- \
		--proxy-client-cert-file "$PKI/front-proxy-client.crt" \
		--proxy-client-key-file "$PKI/front-proxy-client.key"
	wait_for "kube-apiserver to be ready" 90 kube-apiserver kubectl get --raw /readyz
	# The API server's calls to kubelets (logs, exec, port-forward).
	kubectl create clusterrolebinding kshop:kube-apiserver-kubelet-client \
		--clusterrole system:kubelet-api-admin --user kube-apiserver-kubelet-client >/dev/null
	# kube-router's firewall reads pods, namespaces, NetworkPolicies and its node.
	kubectl apply -f - >/dev/null <<-EOF
		apiVersion: rbac.authorization.k8s.io/v1
		kind: ClusterRole
		metadata: {name: "kshop:kube-router"}
		rules:
		- apiGroups: [""]
		  resources: [namespaces, pods, services, endpoints, nodes]
		  verbs: [get, list, watch]
		- apiGroups: [discovery.k8s.io]
		  resources: [endpointslices]
		  verbs: [get, list, watch]
		- apiGroups: [networking.k8s.io]
		  resources: [networkpolicies]
		  verbs: [get, list, watch]
		---
		apiVersion: rbac.authorization.k8s.io/v1
		kind: ClusterRoleBinding
		metadata: {name: "kshop:kube-router"}
		roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kshop:kube-router"}
		subjects:
		- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "kshop:kube-router"}
	EOF
}

start_controllers() {
	# --use-service-account-credentials: each controller acts as its own service
	# account, with only its own permissions. --leader-elect=false: one instance.
	# --flex-volume-plugin-dir: the default is a folder under /usr/libexec, which
	# it would create.
	start_daemon kube-controller-manager "$KUBE_BIN_DIR/kube-controller-manager" \
		--kubeconfig "$CONF/kube-controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false \
		--use-service-account-credentials \
		--service-account-private-key-file "$PKI/service-account.key" \
		--root-ca-file "$PKI/ca.crt" \
		--flex-volume-plugin-dir "$STATE/volume-plugins"
	start_daemon kube-scheduler "$KUBE_BIN_DIR/kube-scheduler" \
		--kubeconfig "$CONF/kube-scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false
	# The service account controller creates "default" in each namespace once it runs.
	wait_for "the controller manager to create service accounts" 60 kube-controller-manager \
		kubectl -n default get serviceaccount default
	daemon_alive kube-scheduler || {
		log "kube-scheduler exited; see $LOGS/kube-scheduler.log"
		return 1
	}
}

start_containerd() {
	mkdir -p "$CONTAINERD_DIR"
	# restrict_oom_score_adj: without CAP_SYS_RESOURCE (containers, some VMs) runc
	# cannot lower a process's oom_score_adj and every sandbox fails to start; with
	# it containerd never asks for a lower value than its own. Every path is
	# private to the cluster, runc's state included.
	cat >"$CONTAINERD_DIR/config.toml" <<-EOF
		version = 2
		root = "$CONTAINERD_DIR/root"
		state = "$CONTAINERD_DIR/state"
		[grpc]
		  address = "$CONTAINERD_SOCK"
		[ttrpc]
		  address = "$CONTAINERD_SOCK.ttrpc"
		[plugins."io.containerd.internal.v1.opt"]
		  path = "$CONTAINERD_DIR/opt"
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "kshop.local/pause:$PAUSE_VERSION"
		  restrict_oom_score_adj = true
		  [plugins."io.containerd.grpc.v1.cri".containerd]
		    snapshotter = "overlayfs"
		    default_runtime_name = "runc"
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
		      runtime_type = "io.containerd.runc.v2"
		      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
		        Root = "$CONTAINERD_DIR/runc"
		        SystemdCgroup = false
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "/usr/lib/cni"
		    conf_dir = "$CONF/cni"
	EOF
	start_daemon containerd containerd --config "$CONTAINERD_DIR/config.toml"
	wait_for "containerd to serve" 30 containerd ctr --address "$CONTAINERD_SOCK" version
}

# build_images makes the images the cluster itself runs, with the repository's
# image builder (hack/ociimage): nothing is pulled.
build_images() {
	local ociimage="$STATE/bin/ociimage" probe="$STATE/bin/clusterprobe"
	(cd "$REPO_DIR" && go build -o "$ociimage" ./hack/ociimage && CGO_ENABLED=0 go build -trimpath -o "$probe" ./hack/clusterprobe)
	{
		"$ociimage" -base scratch -add "$PAUSE_BIN:/pause" -entrypoint /pause -user 65535:65535 \
			-tag "kshop.local/pause:$PAUSE_VERSION" -o "$STATE/images/pause.tar"
		"$ociimage" -base distroless-static -add "$COREDNS_BIN:/coredns" -entrypoint /coredns \
			-tag "kshop.local/coredns:$COREDNS_VERSION" -o "$STATE/images/coredns.tar"
		"$ociimage" -base distroless-static -add "$METRICS_SERVER_BIN:/metrics-server" -entrypoint /metrics-server \
			-tag "kshop.local/metrics-server:$METRICS_SERVER_VERSION" -o "$STATE/images/metrics-server.tar"
		"$ociimage" -base distroless-static -add "$probe:/clusterprobe" -entrypoint /clusterprobe \
			-tag kshop.local/clusterprobe:local -o "$STATE/images/clusterprobe.tar"
	} >"$LOGS/images.log" 2>&1
}

import_images() {
	local image
	for image in "$STATE"/images/*.tar; do
		ctr_k8s images import "$image" >/dev/null
	done
}

start_kubelet() {
	mkdir -p "$KUBELET_DIR" "$POD_LOGS"
	cat >"$CONF/kubelet.yaml" <<-EOF
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		address: $HOST_IP
		readOnlyPort: 0
		healthzBindAddress: 127.0.0.1
		containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
		# cgroup v1 machines without systemd as PID 1 (this test machine).
		failCgroupV1: false
		cgroupDriver: cgroupfs
		failSwapOn: false
		authentication:
		  anonymous: {enabled: false}
		  webhook: {enabled: true}
		  x509: {clientCAFile: $PKI/ca.crt}
		authorization: {mode: Webhook}
		tlsCertFile: $PKI/kubelet-serving.crt
		tlsPrivateKeyFile: $PKI/kubelet-serving.key
		clusterDomain: $DNS_DOMAIN
		clusterDNS: [$DNS_SERVICE_IP]
		resolvConf: $CONF/resolv.conf
		podLogsDir: $POD_LOGS
		volumePluginDir: $STATE/volume-plugins
		# Images cannot be pulled again here: never delete one to free disk space,
		# and do not evict pods because the machine's shared disk is fuller than a
		# dedicated node's would be.
		imageGCHighThresholdPercent: 100
		imageGCLowThresholdPercent: 99
		evictionHard:
		  memory.available: 100Mi
		  nodefs.available: 1%
		  nodefs.inodesFree: 1%
		  imagefs.available: 1%
	EOF
	start_daemon kubelet "$KUBE_BIN_DIR/kubelet" \
		--config "$CONF/kubelet.yaml" --kubeconfig "$CONF/kubelet.kubeconfig" \
		--root-dir "$KUBELET_DIR" --hostname-override "$NODE_NAME" --node-ip "$HOST_IP"
	wait_for "node $NODE_NAME to be Ready" 120 kubelet node_ready
}

node_ready() {
	[ "$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

start_kube_proxy() {
	# Conntrack values 0: leave the machine's conntrack sysctls alone.
	# nodePortAddresses primary: NodePorts on the node's address (the bridge) only.
	cat >"$CONF/kube-proxy.yaml" <<-EOF
		apiVersion: kubeproxy.config.k8s.io/v1alpha1
		kind: KubeProxyConfiguration
		clientConnection: {kubeconfig: $CONF/kube-proxy.kubeconfig}
		hostnameOverride: $NODE_NAME
		mode: iptables
		clusterCIDR: $POD_CIDR
		nodePortAddresses: [primary]
		healthzBindAddress: 127.0.0.1:10256
		metricsBindAddress: 127.0.0.1:10249
		conntrack:
		  maxPerCore: 0
		  tcpEstablishedTimeout: 0s
		  tcpCloseWaitTimeout: 0s
	EOF
	start_daemon kube-proxy "$KUBE_BIN_DIR/kube-proxy" --config "$CONF/kube-proxy.yaml"
	wait_for "kube-proxy to program the Services" 60 kube-proxy curl -fsS http://127.0.0.1:10256/healthz
}

start_kube_router() {
	# Only the firewall: kube-proxy serves Services and the CNI bridge routes.
	# --health-port 0: its health server would listen on every interface.
	start_daemon kube-router "$KUBE_ROUTER_BIN" \
		--kubeconfig "$CONF/kube-router.kubeconfig" --hostname-override "$NODE_NAME" \
		--run-firewall=true --run-router=false --run-service-proxy=false \
		--service-cluster-ip-range "$SERVICE_CIDR" --health-port 0
	wait_for "kube-router to install its firewall" 60 kube-router kube_router_ready
}

kube_router_ready() {
	iptables -S FORWARD | grep -q -- '-j KUBE-ROUTER-FORWARD' &&
		iptables -S KUBE-NWPLCY-DEFAULT >/dev/null
}

start_coredns() {
	local zones="$DNS_DOMAIN $REVERSE_ZONES"
	kubectl apply -f - >/dev/null <<-EOF
		apiVersion: v1
		kind: ServiceAccount
		metadata: {name: coredns, namespace: kube-system}
		---
		apiVersion: rbac.authorization.k8s.io/v1
		kind: ClusterRole
		metadata: {name: "system:coredns"}
		rules:
		- apiGroups: [""]
		  resources: [services, namespaces]
		  verbs: [list, watch]
		- apiGroups: [discovery.k8s.io]
		  resources: [endpointslices]
		  verbs: [list, watch]
		---
		apiVersion: rbac.authorization.k8s.io/v1
		kind: ClusterRoleBinding
		metadata: {name: "system:coredns"}
		roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
		subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
		---
		# The cluster's names only. Any other name gets NXDOMAIN from the template
		# block: there is no forward plugin, so no query ever leaves the machine.
		apiVersion: v1
		kind: ConfigMap
		metadata: {name: coredns, namespace: kube-system}
		data:
		  Corefile: |
		    ${zones// /:53 }:53 {
		        errors
		        health {
		            lameduck 5s
		        }
		        ready
		        kubernetes $zones {
		            ttl 30
		        }
		        prometheus :9153
		        cache 30
		        loadbalance
		        reload
		    }
		    .:53 {
		        errors
		        template ANY ANY {
		            rcode NXDOMAIN
		        }
		    }
		---
		apiVersion: apps/v1
		kind: Deployment
		metadata:
		  name: coredns
		  namespace: kube-system
		  labels: {k8s-app: kube-dns}
		spec:
		  replicas: 1
		  selector: {matchLabels: {k8s-app: kube-dns}}
		  template:
		    metadata:
		      labels: {k8s-app: kube-dns}
		    spec:
		      serviceAccountName: coredns
		      priorityClassName: system-cluster-critical
		      dnsPolicy: Default
		      securityContext:
		        runAsNonRoot: true
		        runAsUser: 65532
		        runAsGroup: 65532
		        seccompProfile: {type: RuntimeDefault}
		        # Port 53 without any capability: the namespaced, "safe" sysctl
		        # lets a non-root process bind it (NetworkPolicies name port 53).
		        sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "53"}]
		      containers:
		      - name: coredns
		        image: kshop.local/coredns:$COREDNS_VERSION
		        imagePullPolicy: Never
		        args: [-conf, /etc/coredns/Corefile]
		        ports:
		        - {name: dns, containerPort: 53, protocol: UDP}
		        - {name: dns-tcp, containerPort: 53, protocol: TCP}
		        - {name: metrics, containerPort: 9153, protocol: TCP}
		        readinessProbe:
		          httpGet: {path: /ready, port: 8181}
		          periodSeconds: 2
		        livenessProbe:
		          httpGet: {path: /health, port: 8080}
		          initialDelaySeconds: 10
		        resources:
		          requests: {cpu: 50m, memory: 40Mi}
		          limits: {memory: 170Mi}
		        securityContext:
		          allowPrivilegeEscalation: false
		          readOnlyRootFilesystem: true
		          capabilities: {drop: [ALL]}
		        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
		      volumes:
		      - name: config
		        configMap: {name: coredns}
		---
		apiVersion: v1
		kind: Service
		metadata:
		  name: kube-dns
		  namespace: kube-system
		  labels: {k8s-app: kube-dns}
		spec:
		  selector: {k8s-app: kube-dns}
		  clusterIP: $DNS_SERVICE_IP
		  ports:
		  - {name: dns, port: 53, protocol: UDP}
		  - {name: dns-tcp, port: 53, protocol: TCP}
		  - {name: metrics, port: 9153, protocol: TCP}
	EOF
}

start_metrics_server() {
	kubectl apply -f - >/dev/null <<-EOF
		apiVersion: v1
		kind: ServiceAccount
		metadata: {name: metrics-server, namespace: kube-system}
		---
		apiVersion: rbac.authorization.k8s.io/v1
		kind: ClusterRole
		metadata:
		  name: "system:aggregated-metrics-reader"
		  labels:
		    rbac.authorization.k8s.io/aggregate-to-view: "true"
		    rbac.authorization.k8s.io/aggregate-to-edit: "true"
		    rbac.authorization.k8s.io/aggregate-to-admin: "true"
		rules:
		- apiGroups: [metrics.k8s.io]
		  resources: [pods, nodes]
		  verbs: [get, list, watch]
		---
		apiVersion: rbac.authorization.k8s.io/v1
		kind: ClusterRole
		metadata: {name: "system:metrics-server"}
		rules:
		- apiGroups: [""]
		  resources: [nodes/metrics]
		  verbs: [get]
		- apiGroups: [""]
		  resources: [pods, nodes]
		  verbs: [get, list, watch]
		---
		apiVersion: rbac.authorization.k8s.io/v1
		kind: ClusterRoleBinding
		metadata: {name: "system:metrics-server"}
		roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:metrics-server"}
		subjects: [{kind: ServiceAccount, name: metrics-server, namespace: kube-system}]
		---
		apiVersion: rbac.authorization.k8s.io/v1
		kind: ClusterRoleBinding
		metadata: {name: "metrics-server:system:auth-delegator"}
		roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
		subjects: [{kind: ServiceAccount, name: metrics-server, namespace: kube-system}]
		---
		apiVersion: rbac.authorization.k8s.io/v1
		kind: RoleBinding
		metadata: {name: "metrics-server-auth-reader", namespace: kube-system}
		roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
		subjects: [{kind: ServiceAccount, name: metrics-server, namespace: kube-system}]
		---
		apiVersion: v1
		kind: Secret
		type: kubernetes.io/tls
		metadata: {name: metrics-server-tls, namespace: kube-system}
		data:
		  tls.crt: $(base64 -w0 <"$PKI/metrics-server.crt")
		  tls.key: $(base64 -w0 <"$PKI/metrics-server.key")
		---
		apiVersion: v1
		kind: Service
		metadata:
		  name: metrics-server
		  namespace: kube-system
		  labels: {k8s-app: metrics-server}
		spec:
		  selector: {k8s-app: metrics-server}
		  ports: [{name: https, port: 443, targetPort: https, protocol: TCP}]
		---
		# The kubelet's serving certificate is signed by the cluster CA, which every
		# pod finds next to its service account token.
		apiVersion: apps/v1
		kind: Deployment
		metadata:
		  name: metrics-server
		  namespace: kube-system
		  labels: {k8s-app: metrics-server}
		spec:
		  replicas: 1
		  selector: {matchLabels: {k8s-app: metrics-server}}
		  template:
		    metadata:
		      labels: {k8s-app: metrics-server}
		    spec:
		      serviceAccountName: metrics-server
		      priorityClassName: system-cluster-critical
		      securityContext:
		        runAsNonRoot: true
		        runAsUser: 65532
		        runAsGroup: 65532
		        seccompProfile: {type: RuntimeDefault}
		      containers:
		      - name: metrics-server
		        image: kshop.local/metrics-server:$METRICS_SERVER_VERSION
		        imagePullPolicy: Never
		        # --metric-resolution: HPAs see figures at most 15s old (default 60s).
		        args:
		        - --secure-port=10250
		        - --tls-cert-file=/tls/tls.crt
		        - --tls-private-key-file=/tls/tls.key
		        - --kubelet-preferred-address-types=InternalIP
		        - --kubelet-use-node-status-port
		        - --kubelet-certificate-authority=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt
		        - --metric-resolution=15s
		        ports: [{name: https, containerPort: 10250, protocol: TCP}]
		        readinessProbe:
		          httpGet: {path: /readyz, port: https, scheme: HTTPS}
		          periodSeconds: 2
		        livenessProbe:
		          httpGet: {path: /livez, port: https, scheme: HTTPS}
		          initialDelaySeconds: 20
		        resources:
		          requests: {cpu: 50m, memory: 64Mi}
		          limits: {memory: 200Mi}
		        securityContext:
		          allowPrivilegeEscalation: false
		          readOnlyRootFilesystem: true
		          capabilities: {drop: [ALL]}
		        volumeMounts:
		        - {name: tls, mountPath: /tls, readOnly: true}
		        - {name: tmp, mountPath: /tmp}
		      volumes:
		      - name: tls
		        secret: {secretName: metrics-server-tls}
		      - name: tmp
		        emptyDir: {}
		---
		apiVersion: apiregistration.k8s.io/v1
		kind: APIService
		metadata: {name: v1beta1.metrics.k8s.io}
		spec:
		  group: metrics.k8s.io
		  version: v1beta1
		  service: {name: metrics-server, namespace: kube-system, port: 443}
		  caBundle: $(base64 -w0 <"$PKI/ca.crt")
		  groupPriorityMinimum: 100
		  versionPriority: 100
	EOF
}

wait_for_addons() {
	kubectl -n kube-system rollout status deployment/coredns --timeout 120s >/dev/null
	kubectl -n kube-system rollout status deployment/metrics-server --timeout 120s >/dev/null
}

# check_dns resolves the API server's Service name from a pod, through the
# cluster DNS Service, as every workload will.
check_dns() {
	local pod=kshop-cluster-dns-check
	kubectl -n kube-system delete pod "$pod" --ignore-not-found --wait >/dev/null
	kubectl -n kube-system apply -f - >/dev/null <<-EOF
		apiVersion: v1
		kind: Pod
		metadata: {name: $pod}
		spec:
		  restartPolicy: Never
		  automountServiceAccountToken: false
		  securityContext:
		    runAsNonRoot: true
		    seccompProfile: {type: RuntimeDefault}
		  containers:
		  - name: lookup
		    image: kshop.local/clusterprobe:local
		    imagePullPolicy: Never
		    args: [lookup, kubernetes.default.svc.$DNS_DOMAIN]
		    securityContext:
		      allowPrivilegeEscalation: false
		      readOnlyRootFilesystem: true
		      capabilities: {drop: [ALL]}
	EOF
	wait_for "the DNS check pod to finish" 60 kubelet pod_finished kube-system "$pod"
	local out
	out="$(kubectl -n kube-system logs "$pod")"
	kubectl -n kube-system delete pod "$pod" --wait=false >/dev/null
	[[ " $out " == *" $KUBERNETES_SERVICE_IP "* ]] || {
		log "a pod could not resolve kubernetes.default.svc.$DNS_DOMAIN: $out"
		return 1
	}
}

pod_finished() { # namespace pod
	local phase
	phase="$(kubectl -n "$1" get pod "$2" -o jsonpath='{.status.phase}')"
	[ "$phase" = Succeeded ] || [ "$phase" = Failed ]
}

check_metrics() {
	kubectl wait --for condition=Available apiservice/v1beta1.metrics.k8s.io --timeout 60s >/dev/null
	# metrics-server reports a node after two scrapes (a CPU rate needs two points).
	wait_for "kubectl top node to show the node" 90 - kubectl top node "$NODE_NAME"
}

up() {
	need_root
	log "stopping any earlier cluster first"
	down
	trap on_up_failure ERR
	local start=$SECONDS
	step "installing missing Debian packages" "" ensure_packages
	step "building (once) or reusing the components" "" build_components
	step "recording the machine's network and kernel settings" "" save_host_state
	step "creating the bridge $BRIDGE ($HOST_IP) and isolation rules" "" setup_network
	step "making certificates and kubeconfigs" "" make_certificates
	step "building the cluster's images (pause, CoreDNS, metrics-server)" "images" build_images
	step "starting etcd" "etcd" start_etcd
	step "starting kube-apiserver" "kube-apiserver etcd" start_apiserver
	step "starting kube-controller-manager and kube-scheduler" "kube-controller-manager kube-scheduler" start_controllers
	step "starting containerd" "containerd" start_containerd
	step "importing the images into containerd" "containerd" import_images
	step "starting the kubelet, waiting for the node to be Ready" "kubelet containerd" start_kubelet
	step "starting kube-proxy" "kube-proxy" start_kube_proxy
	step "starting kube-router (NetworkPolicy firewall)" "kube-router" start_kube_router
	step "deploying CoreDNS" "" start_coredns
	step "deploying metrics-server" "" start_metrics_server
	step "waiting for CoreDNS and metrics-server to be Ready" "kubelet containerd" wait_for_addons
	step "resolving kubernetes.default from a pod" "kubelet containerd" check_dns
	step "waiting for the metrics API (kubectl top node)" "kube-apiserver kubelet" check_metrics
	trap - ERR
	log "ready in $((SECONDS - start))s: eval \"\$(hack/cluster.sh env)\"; kubectl get pods -A"
}

# ---------------------------------------------------------------------------
# down

# stop_daemon NAME: TERM, then KILL after 10s, only if the pid still runs the
# binary this script started (a pid may have been reused since).
stop_daemon() {
	local name=$1 pid bin i
	daemon_alive "$name" || {
		rm -f "$RUN/$name.pid"
		return 0
	}
	read -r pid bin <"$RUN/$name.pid"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		daemon_alive "$name" || break
		sleep 0.1
	done
	if daemon_alive "$name"; then
		log "$name did not stop within 10s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
	rm -f "$RUN/$name.pid"
}

# cluster_processes lists the cluster's programs (the daemons and containerd's
# shims) still running: their command lines name a path in $STATE. It finds what
# a lost pidfile would hide.
cluster_processes() {
	local pid exe
	for pid in $(pgrep -f "$STATE/" 2>/dev/null); do
		exe="$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)")"
		case "$exe" in
		etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy | kube-router | containerd | containerd-shim*) echo "$pid" ;;
		esac
	done
	return 0
}

# Every pod cgroup the kubelet created, in every hierarchy (cgroup v1 hybrid:
# runc also creates them in the unified and the name=systemd hierarchies).
kubepods_cgroups() {
	local dir
	for dir in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		if [ -d "$dir" ]; then echo "$dir"; fi
	done
}

stop_containers() {
	local id pid cg
	# Through containerd while it runs: the shims exit and unmount cleanly.
	if daemon_alive containerd; then
		for id in $(ctr_k8s tasks ls -q 2>/dev/null); do
			ctr_k8s tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
		done
		sleep 0.5
		for id in $(ctr_k8s tasks ls -q 2>/dev/null); do
			ctr_k8s tasks delete -f "$id" >/dev/null 2>&1 || true
		done
		for id in $(ctr_k8s containers ls -q 2>/dev/null); do
			ctr_k8s containers delete "$id" >/dev/null 2>&1 || true
		done
	fi
	# Whatever is left in the pods' cgroups (containerd died, a shim hangs).
	for cg in $(kubepods_cgroups); do
		find "$cg" -name freezer.state -exec sh -c 'for f; do echo THAWED >"$f"; done' _ {} + 2>/dev/null
		for pid in $(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u); do
			kill -KILL "$pid" 2>/dev/null || true
		done
	done
	stop_daemon containerd
	for pid in $(cluster_processes); do
		[[ "$(readlink "/proc/$pid/exe")" != */containerd-shim* ]] || kill -KILL "$pid" 2>/dev/null || true
	done
	# runc's record of containers whose shim is gone.
	if [ -d "$CONTAINERD_DIR/runc/k8s.io" ] && have runc; then
		for id in $(runc --root "$CONTAINERD_DIR/runc/k8s.io" list -q 2>/dev/null); do
			runc --root "$CONTAINERD_DIR/runc/k8s.io" delete --force "$id" >/dev/null 2>&1 || true
		done
	fi
}

unmount_all() {
	local mounts target i
	# Everything mounted under $STATE (not $STATE itself, which may be a mount
	# of the user's) and the pods' network namespaces; deepest first, lazily if
	# something still holds a mount.
	for i in 1 2 3; do
		mounts="$(awk -v s="$STATE/" 'index($5, s) == 1 || $5 ~ "^/run/netns/cni-" {print length($5), $5}' /proc/self/mountinfo |
			sort -rn | cut -d' ' -f2-)"
		[ -n "$mounts" ] || break
		while read -r target; do
			umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
		done <<<"$mounts"
	done
}

delete_netns() {
	local ns before=""
	[ -f "$SAVED/netns" ] && before="$(cat "$SAVED/netns")"
	for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ {print $1}'); do
		grep -qxF "$ns" <<<"$before" && continue
		ip netns delete "$ns" 2>/dev/null && continue
		# `ip netns add` (anyone's) bind-mounts /run/netns onto itself; pod
		# namespaces mounted before that are hidden under it. Unmounting the bind
		# shows them again; it fails, harmlessly, if other namespaces are on it.
		if mountpoint -q /run/netns && umount /run/netns 2>/dev/null; then
			ip netns delete "$ns" 2>/dev/null
		fi
	done
}

delete_links() {
	local link
	# Pod veths die with their network namespaces; any left is still on the bridge.
	for link in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
		ip link delete "$link" 2>/dev/null || true
	done
	ip link delete "$BRIDGE" 2>/dev/null || true
}

# Rules and chains of the cluster: KUBE-* (kube-proxy, the kubelet, kube-router)
# and KSHOP-* (ours), in every table, IPv4 and IPv6; jumps to them first.
clean_iptables() {
	local ipt table rules rule chain
	for ipt in iptables ip6tables; do
		have "$ipt" || continue
		for table in raw mangle nat filter security; do
			"$ipt" -t "$table" -S >/dev/null 2>&1 || continue
			rules="$("$ipt" -t "$table" -S | grep -E -- ' -[jg] (KUBE-|KSHOP-)' | grep -vE '^-A (KUBE-|KSHOP-)' | sed 's/^-A /-D /')" || true
			while read -r rule; do
				[ -z "$rule" ] || eval "$ipt -t $table $rule" 2>/dev/null || true
			done <<<"$rules"
			for chain in $("$ipt" -t "$table" -S | awk '$1 == "-N" && $2 ~ /^(KUBE-|KSHOP-)/ {print $2}'); do
				"$ipt" -t "$table" -F "$chain" 2>/dev/null || true
			done
			for chain in $("$ipt" -t "$table" -S | awk '$1 == "-N" && $2 ~ /^(KUBE-|KSHOP-)/ {print $2}'); do
				"$ipt" -t "$table" -X "$chain" 2>/dev/null || true
			done
		done
	done
	if have ipset; then
		for chain in $(ipset list -n 2>/dev/null | grep -E '^(KUBE-|kube-router)'); do
			ipset destroy "$chain" 2>/dev/null || true
		done
	fi
	# nftables tables that appeared with the cluster and hold no rule now (the
	# empty tables iptables-nft creates on first use).
	if [ -f "$SAVED/nft-tables" ] && have nft; then
		nft list tables 2>/dev/null | while read -r _ family name; do
			grep -qxF "table $family $name" "$SAVED/nft-tables" && continue
			nft list table "$family" "$name" 2>/dev/null | grep -qvE '^\s*(table|chain|type|policy|\}|$)' && continue
			nft delete table "$family" "$name" 2>/dev/null || true
		done
	fi
	if have conntrack; then
		for cidr in "$POD_CIDR" "$SERVICE_CIDR"; do
			conntrack -D -s "$cidr" >/dev/null 2>&1 || true
			conntrack -D -d "$cidr" >/dev/null 2>&1 || true
		done
	fi
}

remove_cgroups() {
	local cg
	for cg in $(kubepods_cgroups); do
		find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
}

restore_host_state() {
	local line key value dir link id
	if [ -f "$SAVED/sysctl.conf" ]; then
		while IFS= read -r line; do
			key=${line%%=*} value=${line#*=}
			[ "$(sysctl -n "$key" 2>/dev/null)" = "$value" ] || sysctl -qw "$key=$value" || true
		done <"$SAVED/sysctl.conf"
	fi
	# What the node leaves outside $STATE whatever its settings: the kubelet's
	# links to pod logs and its device plugin socket (a fixed path), CNI's cached
	# results for our sandboxes, the sockets of shims that were killed.
	for link in /var/log/containers/*.log; do
		if [ -L "$link" ] && [[ "$(readlink "$link")" == "$POD_LOGS/"* ]]; then rm -f "$link"; fi
	done
	rm -f /var/lib/kubelet/device-plugins/kubelet.sock
	for dir in "$CONTAINERD_DIR"/root/io.containerd.grpc.v1.cri/sandboxes/*/; do
		[ -d "$dir" ] || continue
		id="$(basename "$dir")"
		rm -f /var/lib/cni/results/*-"$id"-*
		# A pod's shim is named after its sandbox; containerd names the shim's
		# socket after its own address, the namespace and that name.
		rm -f "/run/containerd/s/$(printf '%s' "$CONTAINERD_SOCK/k8s.io/$id" | sha256sum | cut -d' ' -f1)"
	done
	if [ -f "$SAVED/created-dirs" ]; then
		while read -r dir; do
			if [ -d "$dir" ]; then find "$dir" -depth -type d -empty -delete 2>/dev/null; fi
		done <"$SAVED/created-dirs"
	fi
}

# report_leftovers says what `down` could not remove; it is empty on success.
report_leftovers() {
	local left=()
	local name
	local pids
	pids="$(cluster_processes | tr '\n' ' ')"
	[ -z "$pids" ] || left+=("processes $pids")
	ip link show "$BRIDGE" >/dev/null 2>&1 && left+=("bridge $BRIDGE")
	grep -qF " $STATE/" /proc/self/mountinfo && left+=("mounts under $STATE")
	iptables-save 2>/dev/null | grep -qE 'KUBE-|KSHOP-' && left+=("iptables rules")
	[ -z "$(kubepods_cgroups)" ] || left+=("kubepods cgroups")
	if [ ${#left[@]} -gt 0 ]; then
		log "could not remove: ${left[*]}"
		return 1
	fi
}

down() {
	need_root
	local start=$SECONDS name i pid
	# Every step is attempted whatever failed before it; what could not be
	# removed is reported at the end (and makes `down` fail).
	set +e
	stop_daemon kubelet
	stop_containers
	for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
		name=${DAEMONS[i]}
		stop_daemon "$name"
	done
	# Daemons whose pidfile is gone (an interrupted `up`, a wiped folder).
	for pid in $(cluster_processes); do kill -KILL "$pid" 2>/dev/null || true; done
	unmount_all
	delete_netns
	delete_links
	# With the bridge gone, the cluster's addresses would route to the default
	# gateway: a client still running (a test's informer, a kubectl watch) would
	# send its retries off the machine. Unreachable routes make them fail here, at
	# once; `up` replaces them. And no kubeconfig leads a new client there.
	ip route replace unreachable "$POD_CIDR"
	ip route replace unreachable "$SERVICE_CIDR"
	rm -f "$KUBECONFIG_ADMIN" "$CONF"/*.kubeconfig
	clean_iptables
	remove_cgroups
	restore_host_state
	set -e
	report_leftovers
	log "down in $((SECONDS - start))s"
}

# ---------------------------------------------------------------------------

print_env() {
	cat <<-EOF
		export KUBECONFIG="$KUBECONFIG_ADMIN"
		export KSHOP_CLUSTER_DIR="$STATE"
		export KSHOP_CLUSTER_CONTAINERD="$CONTAINERD_SOCK"
		export KSHOP_CLUSTER_HOST_IP="$HOST_IP"
		export KSHOP_CLUSTER_CONTEXT="$CONTEXT"
		export PATH="$STATE/bin:\$PATH"
	EOF
}

load_image() {
	need_root
	[ $# -gt 0 ] || die "usage: hack/cluster.sh load-image FILE.tar..."
	if [ ! -S "$CONTAINERD_SOCK" ] || ! daemon_alive containerd; then
		die "the cluster is not running: hack/cluster.sh up"
	fi
	local file
	for file in "$@"; do
		[ -f "$file" ] || die "$file: no such file"
		ctr_k8s images import "$file" >&2
	done
}

case "${1:-}" in
up) up ;;
down) down ;;
env) print_env ;;
load-image)
	shift
	load_image "$@"
	;;
*)
	echo "usage: hack/cluster.sh up|down|env|load-image FILE.tar..." >&2
	exit 2
	;;
esac
