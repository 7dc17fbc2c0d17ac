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
