{{/* Names and labels shared by every template. */}}
{{- define "kshop.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kshop.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: kshop
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "kshop.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* A service's image: services.<name>.image when set (skaffold sets it to what
it built), else <registry>/<prefix><name>:<tag>. */}}
{{- define "kshop.image" -}}
{{- $img := .root.Values.image -}}
{{- $svc := get .root.Values.services .name -}}
{{- if and $svc $svc.image -}}
{{- $svc.image -}}
{{- else -}}
{{- printf "%s/%s%s:%s" $img.registry $img.repositoryPrefix .name (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* KSHOP_GATEWAY for gateway, and so on. */}}
{{- define "kshop.prefix" -}}
{{- printf "KSHOP_%s" (upper .name) -}}
{{- end -}}

{{/*
The messaging names the services are built with: files/topology.yaml, which
hack/topologygen generates from services/events (the Kafka topics, the RabbitMQ
exchanges and routes, the order timers and how their delay queues are named).
The topology documents and the RabbitMQ permissions are rendered from it alone.
*/}}
{{- define "kshop.messaging" -}}
{{- .Files.Get "files/topology.yaml" | required "files/topology.yaml is missing: run go run ./hack/topologygen" -}}
{{- end -}}

{{/*
An order timer delay as whole nanoseconds, as the order service reads it (Go's
durations: 90s, 1h30m, 1500ms, without a fraction or a sign), truncated to the
last unit of the naming rule files/topology.yaml carries
(rabbitmq.delayQueueNames), the way events.Route.DelayQueueName truncates it.
Takes (dict "delay" DURATION "naming" delayQueueNames).
*/}}
{{- define "kshop.delayNanoseconds" -}}
{{- $d := trim .delay -}}
{{- $units := "ns|us|µs|μs|ms|s|m|h" -}}
{{- if not (regexMatch (printf "^([0-9]+(%s))+$" $units) $d) -}}
{{- fail (printf "order timer delay %q: write whole numbers with units (%s), as 90s, 4h or 1h30m" $d $units) -}}
{{- end -}}
{{- $nanoseconds := dict "ns" 1 "us" 1000 "µs" 1000 "μs" 1000 "ms" 1000000 "s" 1000000000 "m" 60000000000 "h" 3600000000000 -}}
{{- $ns := 0 -}}
{{- range regexFindAll (printf "[0-9]+(%s)" $units) $d -1 -}}
{{- $digits := regexFind "^[0-9]+" . -}}
{{- $unit := get $nanoseconds (trimPrefix $digits .) -}}
{{- if or (gt (len $digits) 18) (gt (atoi $digits) (div (sub 9223372036854775807 $ns) $unit)) -}}
{{- fail (printf "order timer delay %q is longer than a Go duration can be" $d) -}}
{{- end -}}
{{- $ns = add $ns (mul (atoi $digits) $unit) -}}
{{- end -}}
{{- $finest := last .naming.unitsLargestFirst -}}
{{- $ns = sub $ns (mod $ns (int64 $finest.nanoseconds)) -}}
{{- if lt $ns 1 -}}
{{- fail (printf "order timer delay %q: at least 1%s" $d $finest.suffix) -}}
{{- end -}}
{{- $ns -}}
{{- end -}}

{{/*
A wait in nanoseconds written as a delay queue's name writes it: in the first
(largest) unit of the naming rule that divides it, as 8h, 90m or 1500ms; Go
reads it back as the same duration. Takes (dict "ns" NANOSECONDS "naming"
delayQueueNames).
*/}}
{{- define "kshop.delayWritten" -}}
{{- $ns := int64 .ns -}}
{{- $written := "" -}}
{{- range .naming.unitsLargestFirst -}}
{{- if and (not $written) (eq 0 (mod $ns (int64 .nanoseconds))) -}}
{{- $written = printf "%d%s" (div $ns (int64 .nanoseconds)) .suffix -}}
{{- end -}}
{{- end -}}
{{- $written -}}
{{- end -}}

{{/*
The name a dependency chart gives its objects, computed the way their fullname
helpers do (Bitnami's common.names.fullname, loki.fullname, tempo.fullname,
...): fullnameOverride, else <release>-<chart or nameOverride>, or the release
name alone when it already contains the chart's name; 63 characters at most.
Takes (dict "release" NAME "chart" CHART-OR-ALIAS "values" ITS-VALUES); values
may be left out where they cannot be seen (in another subchart's tpl).
*/}}
{{- define "kshop.dependencyFullname" -}}
{{- $values := .values | default dict -}}
{{- if $values.fullnameOverride -}}
{{- $values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .chart $values.nameOverride -}}
{{- if contains $name .release -}}
{{- .release | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .release $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Prometheus's URL under kube-prometheus-stack, whose fullname is cut to 26
characters (kshop-kube-prometheus-stac for release kshop). Takes the release name.
*/}}
{{- define "kshop.prometheusURL" -}}
{{- $chart := "kube-prometheus-stack" -}}
{{- $full := ternary . (printf "%s-%s" . $chart) (contains $chart .) | trunc 26 | trimSuffix "-" -}}
{{- printf "http://%s-prometheus:9090" $full -}}
{{- end -}}

{{/*
host:port[,host:port...] -> {items: [{host, port}]}; fails naming the value when
an entry is not host:port. Takes (dict "value" STRING "name" VALUE-PATH).
*/}}
{{- define "kshop.endpoints" -}}
{{- $items := list -}}
{{- range splitList "," .value -}}
{{- $entry := trim . -}}
{{- if $entry -}}
{{- if not (regexMatch "^([^:\\[\\]]+|\\[[0-9a-fA-F:.]+\\]):[0-9]{1,5}$" $entry) -}}
{{- fail (printf "%s: %q is not host:port" $.name $entry) -}}
{{- end -}}
{{- $items = append $items (dict "host" (regexReplaceAll ":[0-9]+$" $entry "" | trimPrefix "[" | trimSuffix "]") "port" (regexFind "[0-9]+$" $entry | atoi)) -}}
{{- end -}}
{{- end -}}
{{- dict "items" $items | toYaml -}}
{{- end -}}

{{/*
A NetworkPolicy egress rule to endpoints outside the chart's own pods: their
TCP ports, and, when every host is an IP address, only those addresses (a name
can resolve anywhere, so a rule for names can only name ports).
Takes (dict "ports" LIST "hosts" LIST).
*/}}
{{- define "kshop.egressRule" -}}
{{- $ports := list -}}
{{- range uniq .ports }}{{ $ports = append $ports (dict "port" (int .) "protocol" "TCP") }}{{ end -}}
{{- $to := list -}}
{{- $allAddresses := gt (len .hosts) 0 -}}
{{- range uniq .hosts -}}
{{- if regexMatch "^[0-9]{1,3}(\\.[0-9]{1,3}){3}$" . -}}
{{- $to = append $to (dict "ipBlock" (dict "cidr" (printf "%s/32" .))) -}}
{{- else if regexMatch "^[0-9a-fA-F:]+:[0-9a-fA-F:.]*$" . -}}
{{- $to = append $to (dict "ipBlock" (dict "cidr" (printf "%s/128" .))) -}}
{{- else -}}
{{- $allAddresses = false -}}
{{- end -}}
{{- end -}}
{{- $rule := dict "ports" $ports -}}
{{- if $allAddresses }}{{ $_ := set $rule "to" $to }}{{ end -}}
{{- toYaml $rule -}}
{{- end -}}

{{/*
A Secret reference {name, key} where an empty name means the in-chart
dependency's Secret. Takes (dict "ref" {name, key} "default" NAME).
*/}}
{{- define "kshop.secretRef" -}}
{{- dict "name" (default .default .ref.name) "key" .ref.key | toYaml -}}
{{- end -}}

{{/*
Every connection of the release, resolved: what the values name, or, where they
leave a host or Secret empty, the in-chart dependency of this release (its
objects are named as that chart names them). A dependency that is switched off
and not named in connections fails the render with the value to set; only what
an enabled service (or the controller) uses is resolved. The templates read the
result with: include "kshop.connections" . | fromYaml.
*/}}
{{- define "kshop.connections" -}}
{{- $v := .Values -}}
{{- $c := $v.connections -}}
{{- $release := .Release.Name -}}
{{- $out := dict -}}

{{- /* What the enabled services and the controller use. */ -}}
{{- $uses := dict -}}
{{- range $name, $svc := $v.services -}}
{{- if $svc.enabled -}}
{{- range $svc.allowTo }}{{ $_ := set $uses . true }}{{ end -}}
{{- if hasKey $c.databases $name }}{{ $_ := set $uses (printf "db-%s" $name) true }}{{ end -}}
{{- end -}}
{{- end -}}
{{- if $v.controller.enabled -}}
{{- if $v.topology.kafka.enabled }}{{ $_ := set $uses "kafka" true }}{{ end -}}
{{- if $v.topology.rabbitmq.enabled }}{{ $_ := set $uses "rabbitmq" true }}{{ end -}}
{{- end -}}
{{- if $v.services.mail.enabled }}{{ $_ := set $uses "smtp" true }}{{ end -}}

{{- /* A CA bundle of the user's, for dependencies whose certificates a private CA signed. */ -}}
{{- $ca := dict -}}
{{- if $c.tlsCA.secretName -}}
{{- $ca = dict "secretName" $c.tlsCA.secretName "key" $c.tlsCA.key "dir" "/etc/kshop/tls-ca" "file" (printf "/etc/kshop/tls-ca/%s" $c.tlsCA.key) -}}
{{- end -}}
{{- $_ := set $out "tlsCA" $ca -}}

{{- /* Traces: the endpoint given, or the release's own collector when observability is on. */ -}}
{{- $otlp := $v.common.otlpEndpoint -}}
{{- if and (not $otlp) $v.observability.enabled -}}
{{- $otlp = printf "http://%s:4317" (include "kshop.dependencyFullname" (dict "release" $release "chart" "opentelemetry-collector" "values" (index $v "opentelemetry-collector"))) -}}
{{- end -}}
{{- if $otlp -}}
{{- $u := urlParse $otlp -}}
{{- $host := regexReplaceAll ":[0-9]+$" $u.host "" | trimPrefix "[" | trimSuffix "]" -}}
{{- $port := regexFind ":[0-9]+$" $u.host | trimPrefix ":" | default "4317" -}}
{{- /* 4317 (gRPC) and 4318 (HTTP) are the collectors' pod ports whatever port their Service shows. */ -}}
{{- $_ := set $out "otlp" (dict "endpoint" $otlp "egress" (include "kshop.egressRule" (dict "ports" (list (atoi $port) 4317 4318) "hosts" (list $host)) | fromYaml)) -}}
{{- else -}}
{{- $_ := set $out "otlp" (dict "endpoint" "") -}}
{{- end -}}

{{- /* PostgreSQL: one database per service (<release>-<svc>db of postgresql-ha: pgpool in front, the password in <release>-<svc>db-postgresql). */ -}}
{{- $dbs := dict -}}
{{- range $name, $db := $c.databases -}}
{{- if hasKey $uses (printf "db-%s" $name) -}}
{{- $alias := printf "%sdb" $name -}}
{{- $dep := get $v $alias | default dict -}}
{{- $host := $db.host -}}
{{- $secret := $db.passwordSecret.name -}}
{{- if $dep.enabled -}}
{{- $full := include "kshop.dependencyFullname" (dict "release" $release "chart" $alias "values" $dep) -}}
{{- $host = default (printf "%s-pgpool" $full) $host -}}
{{- $secret = default (printf "%s-postgresql" $full) $secret -}}
{{- end -}}
{{- $host = required (printf "connections.databases.%s.host: %s.enabled is false, so give the host of the %s service's PostgreSQL database" $name $alias $name) $host -}}
{{- $secret = required (printf "connections.databases.%s.passwordSecret.name: %s.enabled is false, so name the Secret that holds the password of PostgreSQL user %s (key %s)" $name $alias $db.user $db.passwordSecret.key) $secret -}}
{{- $url := printf "postgres://%s@%s:%v/%s?sslmode=%s" $db.user (ternary (printf "[%s]" $host) $host (contains ":" $host)) $db.port $db.database $db.sslmode -}}
{{- $_ := set $dbs $name (dict "url" $url "passwordSecret" (dict "name" $secret "key" $db.passwordSecret.key) "egress" (include "kshop.egressRule" (dict "ports" (list $db.port) "hosts" (list $host)) | fromYaml)) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $out "databases" $dbs -}}

{{- /* Kafka: <release>-kafka:9092, PLAINTEXT inside the cluster. */ -}}
{{- if $uses.kafka -}}
{{- $k := $c.kafka -}}
{{- $brokers := $k.brokers -}}
{{- if and (not $brokers) $v.kafka.enabled -}}
{{- $brokers = printf "%s:9092" (include "kshop.dependencyFullname" (dict "release" $release "chart" "kafka" "values" $v.kafka)) -}}
{{- end -}}
{{- $brokers = required "connections.kafka.brokers: kafka.enabled is false, so give your Kafka's bootstrap brokers as host:port[,host:port]" $brokers -}}
{{- $eps := (include "kshop.endpoints" (dict "value" $brokers "name" "connections.kafka.brokers") | fromYaml).items -}}
{{- $ports := list -}}{{- $hosts := list -}}
{{- range $eps }}{{ $ports = append $ports .port }}{{ $hosts = append $hosts .host }}{{ end -}}
{{- $sasl := dict "mechanism" $k.sasl.mechanism -}}
{{- if $k.sasl.mechanism -}}
{{- $_ := set $sasl "username" (required (printf "connections.kafka.sasl.username: SASL mechanism %s needs a user name" $k.sasl.mechanism) $k.sasl.username) -}}
{{- $secret := dict "name" $k.sasl.passwordSecret.name "key" $k.sasl.passwordSecret.key -}}
{{- if and (not $secret.name) $v.kafka.enabled -}}
{{- /* The bundled Kafka's client passwords: the Kafka chart generates them into
<kafka>-user-passwords, the first client user's under system-user-password. */ -}}
{{- $secret = dict "name" (printf "%s-user-passwords" (include "kshop.dependencyFullname" (dict "release" $release "chart" "kafka" "values" $v.kafka))) "key" "system-user-password" -}}
{{- end -}}
{{- $_ := set $sasl "passwordSecret" (dict "name" (required (printf "connections.kafka.sasl.passwordSecret.name: SASL mechanism %s needs the Secret holding the password (key %s)" $k.sasl.mechanism $k.sasl.passwordSecret.key) $secret.name) "key" $secret.key) -}}
{{- end -}}
{{- $_ := set $out "kafka" (dict "brokers" (join "," (splitList "," $brokers | compact)) "tls" $k.tls "caFile" (ternary (get $ca "file") "" (and $k.tls (hasKey $ca "file"))) "sasl" $sasl "egress" (include "kshop.egressRule" (dict "ports" $ports "hosts" $hosts) | fromYaml)) -}}
{{- end -}}

{{- /* Redis: <release>-redis-cluster:6379; its password is this chart's Secret of the same name (templates/redis-password.yaml). */ -}}
{{- if $uses.redis -}}
{{- $r := $c.redis -}}
{{- $dep := index $v "redis-cluster" | default dict -}}
{{- $addrs := $r.addrs -}}
{{- $secret := $r.passwordSecret.name -}}
{{- if $dep.enabled -}}
{{- $full := include "kshop.dependencyFullname" (dict "release" $release "chart" "redis-cluster" "values" $dep) -}}
{{- $addrs = default (printf "%s:6379" $full) $addrs -}}
{{- $secret = default $full $secret -}}
{{- end -}}
{{- $addrs = required "connections.redis.addrs: redis-cluster.enabled is false, so give your Redis as host:port (a cluster: any nodes, comma-separated)" $addrs -}}
{{- $secret = required (printf "connections.redis.passwordSecret.name: redis-cluster.enabled is false, so name the Secret that holds your Redis password (key %s)" $r.passwordSecret.key) $secret -}}
{{- $eps := (include "kshop.endpoints" (dict "value" $addrs "name" "connections.redis.addrs") | fromYaml).items -}}
{{- $ports := list -}}{{- $hosts := list -}}
{{- range $eps }}{{ $ports = append $ports .port }}{{ $hosts = append $hosts .host }}{{ end -}}
{{- $_ := set $out "redis" (dict "addrs" (join "," (splitList "," $addrs | compact)) "cluster" $r.cluster "tls" $r.tls "username" $r.username "passwordSecret" (dict "name" $secret "key" $r.passwordSecret.key) "egress" (include "kshop.egressRule" (dict "ports" $ports "hosts" $hosts) | fromYaml)) -}}
{{- end -}}

{{- /* RabbitMQ: the RabbitmqCluster <release>-rabbitmq; its operator writes the credentials into <release>-rabbitmq-default-user. */ -}}
{{- if $uses.rabbitmq -}}
{{- $a := $c.amqp -}}
{{- $host := $a.host -}}
{{- $userSecret := $a.userSecret.name -}}
{{- $passwordSecret := $a.passwordSecret.name -}}
{{- if $v.rabbitmq.enabled -}}
{{- $full := include "kshop.fullname" (dict "root" $ "name" "rabbitmq") -}}
{{- $host = default $full $host -}}
{{- $userSecret = default (printf "%s-default-user" $full) $userSecret -}}
{{- $passwordSecret = default (printf "%s-default-user" $full) $passwordSecret -}}
{{- end -}}
{{- $host = required "connections.amqp.host: rabbitmq.enabled is false, so give your RabbitMQ's host" $host -}}
{{- $userSecret = required (printf "connections.amqp.userSecret.name: rabbitmq.enabled is false, so name the Secret that holds the RabbitMQ user name (key %s)" $a.userSecret.key) $userSecret -}}
{{- $passwordSecret = required (printf "connections.amqp.passwordSecret.name: rabbitmq.enabled is false, so name the Secret that holds the RabbitMQ password (key %s)" $a.passwordSecret.key) $passwordSecret -}}
{{- /* The vhost is the URL's path, escaped ("/" is %2F); the default vhost "/" is written as an empty path. */ -}}
{{- $vhost := ternary "" (urlquery $a.vhost) (eq $a.vhost "/") -}}
{{- $url := printf "%s://%s:%v/%s" (ternary "amqps" "amqp" $a.tls) (ternary (printf "[%s]" $host) $host (contains ":" $host)) $a.port $vhost -}}
{{- $_ := set $out "amqp" (dict "url" $url "userSecret" (dict "name" $userSecret "key" $a.userSecret.key) "passwordSecret" (dict "name" $passwordSecret "key" $a.passwordSecret.key) "egress" (include "kshop.egressRule" (dict "ports" (list $a.port) "hosts" (list $host)) | fromYaml)) -}}
{{- end -}}

{{- /* SMTP: Mailpit's <release>-mailpit-smtp (port 25 on the Service, 1025 on its pods), or the relay given. */ -}}
{{- if $uses.smtp -}}
{{- $s := $c.smtp -}}
{{- $smtp := dict "host" $s.host "port" $s.port "tls" $s.tls "from" $s.from "username" $s.username -}}
{{- $podPorts := list $s.port -}}
{{- if and (not $s.host) $v.mailpit.enabled -}}
{{- $_ := set $smtp "host" (printf "%s-smtp" (include "kshop.dependencyFullname" (dict "release" $release "chart" "mailpit" "values" $v.mailpit))) -}}
{{- $podPorts = list 1025 -}}
{{- end -}}
{{- $_ := required "connections.smtp.host: mailpit.enabled is false, so give the SMTP relay the mail service sends through (host, port, tls, and a username with passwordSecret if it asks for a login)" $smtp.host -}}
{{- if $s.username -}}
{{- $_ := set $smtp "passwordSecret" (dict "name" (required (printf "connections.smtp.passwordSecret.name: SMTP user %s needs the Secret holding its password (key %s)" $s.username $s.passwordSecret.key) $s.passwordSecret.name) "key" $s.passwordSecret.key) -}}
{{- end -}}
{{- $_ := set $smtp "egress" (include "kshop.egressRule" (dict "ports" $podPorts "hosts" (list $smtp.host)) | fromYaml) -}}
{{- $_ := set $out "smtp" $smtp -}}
{{- end -}}

{{- toYaml $out -}}
{{- end -}}

{{/*
The smoke test's inbox: smokeTest.inboxURL, or this release's Mailpit
(<release>-mailpit-http:80, its pods on 8025). {url, egress}.
*/}}
{{- define "kshop.inbox" -}}
{{- $url := .Values.smokeTest.inboxURL -}}
{{- $ports := list -}}
{{- if and (not $url) .Values.mailpit.enabled -}}
{{- $url = printf "http://%s-http:80" (include "kshop.dependencyFullname" (dict "release" .Release.Name "chart" "mailpit" "values" .Values.mailpit)) -}}
{{- $ports = list 8025 -}}
{{- end -}}
{{- $url = required "smokeTest.inboxURL: mailpit.enabled is false, so give the URL of the Mailpit the mail service sends to (its web API), or set smokeTest.enabled=false" $url -}}
{{- $u := urlParse $url -}}
{{- $host := regexReplaceAll ":[0-9]+$" $u.host "" | trimPrefix "[" | trimSuffix "]" -}}
{{- if not $ports -}}
{{- $ports = list (regexFind ":[0-9]+$" $u.host | trimPrefix ":" | default (ternary "443" "80" (eq $u.scheme "https")) | atoi) -}}
{{- end -}}
{{- dict "url" $url "egress" (include "kshop.egressRule" (dict "ports" $ports "hosts" (list $host)) | fromYaml) | toYaml -}}
{{- end -}}

{{/* Monitoring objects are rendered when the cluster serves their API, or when
observability.enabled brings the Prometheus Operator's CRDs in this release
(helm installs a chart's CRDs before it renders the templates). */}}
{{- define "kshop.serviceMonitors" -}}
{{- if and (or .Values.serviceMonitor.enabled .Values.observability.enabled) (or .Values.observability.enabled (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) -}}
true
{{- end -}}
{{- end -}}
{{- define "kshop.prometheusRule" -}}
{{- if and (or .Values.serviceMonitor.enabled .Values.observability.enabled) (or .Values.observability.enabled (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/PrometheusRule")) -}}
true
{{- end -}}
{{- end -}}

{{/* The JWKS Secret the controller keeps: jwks.secretName, else <release>-jwks. */}}
{{- define "kshop.jwksSecret" -}}
{{- default (include "kshop.fullname" (dict "root" . "name" "jwks")) .Values.jwks.secretName -}}
{{- end -}}

{{/* The gateway's identity keys (private, the gateway's alone) and their public half (the services'). */}}
{{- define "kshop.identitySecret" -}}
{{- default (include "kshop.fullname" (dict "root" . "name" "identity-keys")) .Values.identity.secretName -}}
{{- end -}}
{{- define "kshop.identityConfigMap" -}}
{{- default (include "kshop.fullname" (dict "root" . "name" "identity-keys-public")) .Values.identity.configMapName -}}
{{- end -}}

{{/* The order timers' delay queues (a YAML list of {name, delay, exchange,
routingKey}), one per link of the timer chain that services.order.env's timer
variables make (the service's defaults when unset), in the order the order
service declares them: the reminders, then the expiry, each waiting the time
since the link before; two links of one timer with the same wait share a
queue. */}}
{{- define "kshop.delayQueues" -}}
{{- $rabbitmq := (include "kshop.messaging" . | fromYaml).rabbitmq }}
{{- $timers := $rabbitmq.timers }}
{{- $naming := $rabbitmq.delayQueueNames }}
{{- $orderEnv := .Values.services.order.env | default dict }}
{{- $reminders := $timers.reminder.defaultDelays }}
{{- with get $orderEnv $timers.reminder.variable }}{{ $reminders = splitList "," (toString .) }}{{ end }}
{{- $expiry := first $timers.expiry.defaultDelays }}
{{- with get $orderEnv $timers.expiry.variable }}{{ $expiry = toString . }}{{ end }}
{{- /* The chain: every reminder in order, then the expiry; each link waits
the time since the one before (services/order's timerChain). */}}
{{- $links := list }}
{{- range $reminders }}{{ $links = append $links (dict "timer" $timers.reminder "delay" .) }}{{ end }}
{{- $links = append $links (dict "timer" $timers.expiry "delay" $expiry) }}
{{- $out := list }}
{{- $seen := dict }}
{{- $before := int64 0 }}
{{- range $links }}
{{- $ns := int64 (include "kshop.delayNanoseconds" (dict "delay" .delay "naming" $naming)) }}
{{- if le $ns $before }}
{{- fail (printf "services.order.env: the order timers must come in order, each reminder of %s before the next and all before %s; %q is not after the delay before it" $timers.reminder.variable $timers.expiry.variable (trim .delay)) }}
{{- end }}
{{- $wait := include "kshop.delayWritten" (dict "ns" (sub $ns $before) "naming" $naming) }}
{{- $before = $ns }}
{{- $name := printf "%s%s%s" .timer.queue $naming.infix $wait }}
{{- if not (hasKey $seen $name) }}
{{- $_ := set $seen $name true }}
{{- $out = append $out (dict "name" $name "delay" $wait "exchange" $timers.exchange "routingKey" .timer.routingKey) }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end -}}

{{/* What each RabbitMQ user may touch (a YAML map user -> {configure, write,
read} regular expressions), from the routes of files/topology.yaml (kshop.messaging),
whose entries name their producer and consumer: a service may configure and
read the exchanges and queues of the routes it produces or consumes, their
dead-letter queues and (order) the timers' delay queues, and write those queues
and the exchanges it publishes to; the controller everything the topology
document names. Declaring a queue whose dead letters go to the default exchange
needs write on amq.default, and so does a consumer's dead-lettering: every user
writes amq.default. */}}
{{- define "kshop.rabbitmqGrants" -}}
{{- $t := (include "kshop.messaging" . | fromYaml).rabbitmq }}
{{- $delays := list }}
{{- range include "kshop.delayQueues" . | fromYamlArray }}{{ $delays = append $delays .name }}{{ end }}
{{- $all := list }}
{{- range $t.exchanges }}{{ $all = append $all .name }}{{ end }}
{{- $names := dict }}
{{- $writes := dict }}
{{- range $route := $t.routes }}
{{- $queues := list .queue .deadLetterQueue }}
{{- $all = concat $all (append $queues .exchange) }}
{{- range $svc := list .producer .consumer | uniq }}
{{- $_ := set $names $svc (concat (get $names $svc | default list) (append $queues $route.exchange)) }}
{{- $_ := set $writes $svc (concat (get $writes $svc | default list) $queues) }}
{{- end }}
{{- $_ := set $writes .producer (append (get $writes .producer) .exchange) }}
{{- end }}
{{- $_ := set $names "order" (concat (get $names "order" | default list) $delays) }}
{{- $_ := set $writes "order" (concat (get $writes "order" | default list) $delays) }}
{{- $_ := set $names "controller" (concat $all $delays) }}
{{- $_ := set $writes "controller" (concat $all $delays) }}
{{- $out := dict }}
{{- range $user, $list := $names }}
{{- $re := list }}
{{- range $list | uniq | sortAlpha }}{{ $re = append $re (regexQuoteMeta .) }}{{ end }}
{{- $w := list }}
{{- range get $writes $user | uniq | sortAlpha }}{{ $w = append $w (regexQuoteMeta .) }}{{ end }}
{{- $_ := set $out $user (dict "configure" (printf "^(%s)$" (join "|" $re)) "read" (printf "^(%s)$" (join "|" $re)) "write" (printf "^(%s)$" (join "|" (append $w "amq\\.default")))) }}
{{- end }}
{{- toYaml $out }}
{{- end -}}

{{/* The Secret of a RabbitMQ user of this release (rabbitmq.users), "" when
the services share the connections.amqp credentials. */}}
{{- define "kshop.rabbitmqUserSecret" -}}
{{- if and .root.Values.rabbitmq.enabled .root.Values.rabbitmq.users.enabled -}}
{{- printf "%s-%s" (include "kshop.fullname" (dict "root" .root "name" "rabbitmq")) .user -}}
{{- end -}}
{{- end -}}

{{/* A topology document's ConfigMap (kind: kafka or rabbitmq). */}}
{{- define "kshop.topologyConfigMap" -}}
{{- printf "%s-%s-topology" .root.Release.Name .kind -}}
{{- end -}}

{{/* The topology documents the controller keeps, and no others (a YAML
list): the chart's, and controller.extraTopologyConfigMaps. */}}
{{- define "kshop.topologyConfigMaps" -}}
{{- $names := list }}
{{- range $kind := list "kafka" "rabbitmq" }}
{{- if (index $.Values.topology $kind).enabled }}
{{- $names = append $names (include "kshop.topologyConfigMap" (dict "root" $ "kind" $kind)) }}
{{- end }}
{{- end }}
{{- $names = concat $names (.Values.controller.extraTopologyConfigMaps | default list) | uniq }}
{{- toYaml $names }}
{{- end -}}

{{/* Every ConfigMap the controller reads and writes, by name (a YAML list). */}}
{{- define "kshop.controllerConfigMaps" -}}
{{- $names := list (include "kshop.identityConfigMap" .) }}
{{- $names = concat $names (include "kshop.topologyConfigMaps" . | fromYamlArray) }}
{{- toYaml $names }}
{{- end -}}

{{/* Who may scrape the metrics ports: NetworkPolicy peers (a YAML list).
The namespace the values name; the release's own with the bundled Prometheus. */}}
{{- define "kshop.prometheusPeers" -}}
{{- $namespaces := list .Values.networkPolicy.prometheus.namespace }}
{{- if and .Values.observability.enabled (not (has .Release.Namespace $namespaces)) }}
{{- $namespaces = append $namespaces .Release.Namespace }}
{{- end }}
{{- range $namespaces }}
- namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: {{ . | quote }}}}
  podSelector:
    {{- toYaml $.Values.networkPolicy.prometheus.podSelector | nindent 4 }}
{{- end }}
{{- end -}}

{{/* The Kafka settings a client reads, as KEY: "value" lines (services' ConfigMaps, the controller's env).
Takes (dict "prefix" KSHOP_X "kafka" RESOLVED-KAFKA "env" BOOL). */}}
{{- define "kshop.kafkaConfig" -}}
{{- $p := .prefix -}}
{{- $settings := dict (printf "%s_KAFKA_BROKERS" $p) .kafka.brokers (printf "%s_KAFKA_TLS" $p) (toString .kafka.tls) -}}
{{- with .kafka.caFile }}{{ $_ := set $settings (printf "%s_KAFKA_TLS_CA_FILE" $p) . }}{{ end -}}
{{- with .kafka.sasl.mechanism -}}
{{- $_ := set $settings (printf "%s_KAFKA_SASL_MECHANISM" $p) . -}}
{{- $_ := set $settings (printf "%s_KAFKA_SASL_USERNAME" $p) $.kafka.sasl.username -}}
{{- end -}}
{{- range $key := keys $settings | sortAlpha }}
{{- if $.env }}
- {name: {{ $key }}, value: {{ get $settings $key | quote }}}
{{- else }}
{{ $key }}: {{ get $settings $key | quote }}
{{- end }}
{{- end -}}
{{- end -}}

{{/*
The env entries every pod of a service (or the controller) takes from Secrets:
the passwords of what it connects to, and the CA bundle's location.
Takes (dict "prefix" KSHOP_X "conn" CONNECTIONS "database" NAME-OR-"" "redis" BOOL "kafka" BOOL "amqp" BOOL "smtp" BOOL).
*/}}
{{- define "kshop.secretEnv" -}}
{{- $p := .prefix -}}
{{- $conn := .conn -}}
{{- with .database }}
{{- with (get $conn.databases .) }}
- name: PGPASSWORD
  valueFrom: {secretKeyRef: {name: {{ .passwordSecret.name }}, key: {{ .passwordSecret.key }}}}
{{- end }}
{{- end }}
{{- if .redis }}
- name: {{ $p }}_REDIS_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ $conn.redis.passwordSecret.name }}, key: {{ $conn.redis.passwordSecret.key }}}}
{{- end }}
{{- if and .kafka $conn.kafka.sasl.mechanism }}
- name: {{ $p }}_KAFKA_SASL_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ $conn.kafka.sasl.passwordSecret.name }}, key: {{ $conn.kafka.sasl.passwordSecret.key }}}}
{{- end }}
{{- if and .amqp .amqpUserSecret }}
# Its own RabbitMQ user (rabbitmq.users): permissions on its exchanges and queues only.
- name: {{ $p }}_AMQP_USERNAME
  valueFrom: {secretKeyRef: {name: {{ .amqpUserSecret }}, key: username}}
- name: {{ $p }}_AMQP_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .amqpUserSecret }}, key: password}}
{{- else if .amqp }}
- name: {{ $p }}_AMQP_USERNAME
  valueFrom: {secretKeyRef: {name: {{ $conn.amqp.userSecret.name }}, key: {{ $conn.amqp.userSecret.key }}}}
- name: {{ $p }}_AMQP_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ $conn.amqp.passwordSecret.name }}, key: {{ $conn.amqp.passwordSecret.key }}}}
{{- end }}
{{- if and .smtp $conn.smtp.passwordSecret }}
- name: {{ $p }}_SMTP_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ $conn.smtp.passwordSecret.name }}, key: {{ $conn.smtp.passwordSecret.key }}}}
{{- end }}
{{- with $conn.tlsCA.file }}
# Go's TLS clients add this file to the system's roots (the directories of
# /etc/ssl/certs stay trusted); librdkafka reads _KAFKA_TLS_CA_FILE.
- {name: SSL_CERT_FILE, value: {{ . | quote }}}
{{- end }}
{{- end -}}
