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
The suffix of a delay queue's name as the order service makes it
(events.DelayQueueName): the largest of h, m, s, ms that divides the delay, so
"60s" and "1m" both name orders.delay.1m. Takes one duration of one unit.
*/}}
{{- define "kshop.delayQueueSuffix" -}}
{{- $d := trim . -}}
{{- $digits := regexFind "^[0-9]+" $d -}}
{{- $unit := trimPrefix $digits $d -}}
{{- $ms := mul (atoi $digits) (get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit | required (printf "delay %q: write one number and one unit of ms, s, m, h" $d)) -}}
{{- if eq 0 (mod $ms 3600000) }}{{ div $ms 3600000 }}h
{{- else if eq 0 (mod $ms 60000) }}{{ div $ms 60000 }}m
{{- else if eq 0 (mod $ms 1000) }}{{ div $ms 1000 }}s
{{- else }}{{ $ms }}ms{{ end }}
{{- end }}
