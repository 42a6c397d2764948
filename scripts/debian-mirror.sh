# Sourced by the image builders: find_mirror prints the Debian mirror to
# debootstrap from: $DEBIAN_MIRROR, else the first .../debian URI configured
# for apt (deb822 *.sources or one-line *.list), else deb.debian.org.
find_mirror() {
    local m
    m="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' \
        | grep -E '^https?://.*/debian/?$' | head -n1 || true)"
    if [[ -z $m ]]; then
        m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; break } }' \
            | grep -E '^https?://.*/debian/?$' | head -n1 || true)"
    fi
    echo "${DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}
