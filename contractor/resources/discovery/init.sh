#!/bin/sh
# Contractor's discovery initrd: the /init of the image `contractor discovery-image build`
# makes (docs/boot.md). As PID 1 it mounts /proc, /sys and /dev, loads the modules listed in
# /etc/modules, brings a NIC up by DHCP (busybox udhcpc), gathers the machine's facts from
# /sys and /proc, posts them as JSON to http://<endpoint>/discovery (busybox wget) and
# powers the machine off.
#
# Kernel arguments it reads (/proc/cmdline):
#   contractor.mac=MAC            the NIC to bring up (the one the machine booted from);
#                                 without it every Ethernet NIC is tried in turn
#   contractor.endpoint=HOST:PORT the subcontractor's boot endpoint; without it, the DHCP
#                                 lease's next server (else its server) on port 8069
#   contractor.debug=1            a shell on the console instead of powering off
#
# Other uses, for tests and operators:
#   CONTRACTOR_INIT_LIB=1 . init.sh   in another /init: the functions only (see the end)
#   init.sh report                print the report for this machine (SYSFS, PROCFS and
#                                 CMDLINE name other roots) and exit
#   init.sh deconfig|bound|renew|leasefail|nak   udhcpc's event script (udhcpc -s /init)

SYSFS=${SYSFS:-/sys}
PROCFS=${PROCFS:-/proc}
CMDLINE=${CMDLINE:-$PROCFS/cmdline}

say() { echo "discovery: $*" >&2; }

# A kernel argument's value: arg contractor.mac
arg() {
    for word in $(cat "$CMDLINE" 2>/dev/null); do
        case $word in "$1="*) echo "${word#*=}"; return 0 ;; esac
    done
    return 1
}

# A file's first line, trimmed; empty when unreadable
first_line() { head -n 1 "$1" 2>/dev/null | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'; }

# A JSON string of at most 200 printable ASCII characters, or null when empty
json_string() {
    value=$(printf '%s' "$1" | tr -cd ' -~' | cut -c 1-200)
    if [ -z "$value" ]; then printf null; return; fi
    printf '"%s"' "$(printf '%s' "$value" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

# Ethernet interfaces (ARPHRD_ETHER, a real MAC), one "name mac" a line
ethernet() {
    for dir in "$SYSFS"/class/net/*; do
        [ -e "$dir/address" ] || continue
        [ "$(first_line "$dir/type")" = 1 ] || continue
        mac=$(first_line "$dir/address" | tr 'A-F' 'a-f')
        case $mac in ""|00:00:00:00:00:00) continue ;; esac
        echo "${dir##*/} $mac"
    done
}

memory_mib() {
    blocks="$SYSFS/devices/system/memory"
    if [ -r "$blocks/block_size_bytes" ]; then
        size=$((0x$(first_line "$blocks/block_size_bytes")))
        online=0
        for block in "$blocks"/memory*; do
            [ "$(first_line "$block/online")" = 1 ] && online=$((online + 1))
        done
        if [ "$online" -gt 0 ]; then echo $((online * size / 1048576)); return; fi
    fi
    kib=$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' "$PROCFS/meminfo")
    echo $(((${kib:-0} + 1023) / 1024))
}

cpu_count() {
    count=$(grep -c '^processor' "$PROCFS/cpuinfo" 2>/dev/null)
    echo "${count:-0}"
}

disks() {
    separator=
    for dir in "$SYSFS"/block/*; do
        [ -e "$dir/size" ] || continue
        name=${dir##*/}
        case $name in loop*|ram*|zram*|sr*|fd*|dm-*|md*|nbd*) continue ;; esac
        sectors=$(first_line "$dir/size")
        printf '%s{"name": %s, "size_bytes": %s}' "$separator" "$(json_string "$name")" \
            $((${sectors:-0} * 512))
        separator=", "
    done
}

pci() {
    separator=
    for dir in "$SYSFS"/bus/pci/devices/*; do
        [ -e "$dir/vendor" ] || continue
        vendor=$(first_line "$dir/vendor"); device=$(first_line "$dir/device")
        class=$(first_line "$dir/class"); class=${class#0x}
        printf '%s{"vendor": "%s", "device": "%s", "class": "%s"}' "$separator" \
            "${vendor#0x}" "${device#0x}" "$(echo "$class" | cut -c 1-4)"
        separator=", "
    done
}

# The report of docs/boot.md (the discovery report): $1 is the MAC the machine booted from
report() {
    booted=$(echo "$1" | tr 'A-F' 'a-f')
    # at most 64 MACs (the report's limit)
    macs=$(ethernet | head -n 64 | while read -r _ mac; do printf '"%s", ' "$mac"; done)
    macs=${macs%, }
    [ -n "$booted" ] || booted=$(ethernet | head -n 1 | cut -d ' ' -f 2)
    dmi="$SYSFS/class/dmi/id"
    printf '{"mac": %s, "macs": [%s], ' "$(json_string "$booted")" "$macs"
    printf '"manufacturer": %s, ' "$(json_string "$(first_line "$dmi/sys_vendor")")"
    printf '"product": %s, ' "$(json_string "$(first_line "$dmi/product_name")")"
    printf '"serial": %s, ' "$(json_string "$(first_line "$dmi/product_serial")")"
    printf '"uuid": %s, ' "$(json_string "$(first_line "$dmi/product_uuid" | tr 'A-F' 'a-f')")"
    printf '"cpu_count": %s, "memory_mib": %s, ' "$(cpu_count)" "$(memory_mib)"
    printf '"disks": [%s], "pci": [%s]}\n' "$(disks)" "$(pci)"
}

# udhcpc's events: configure the lease, and keep what the endpoint fallback needs
dhcp_event() {
    case $1 in
        deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
        bound|renew)
            ip addr flush dev "$interface"
            ip addr add "$ip/${mask:-24}" dev "$interface"
            for gateway in $router; do ip route add default via "$gateway" dev "$interface"; break; done
            printf 'interface=%s\naddress=%s\nnext_server=%s\nserver=%s\n' \
                "$interface" "$ip" "$siaddr" "$serverid" > /run/lease
            ;;
    esac
}

# Bring one NIC up by DHCP; prints its MAC
network() {
    wanted=$(arg contractor.mac | tr 'A-F' 'a-f')
    ip link set lo up
    for attempt in $(seq 1 20); do
        [ -n "$(ethernet)" ] && break
        sleep 0.5
    done
    ethernet | while read -r name mac; do
        [ -z "$wanted" ] || [ "$mac" = "$wanted" ] || continue
        say "DHCP on $name ($mac)"
        ip link set "$name" up
        if udhcpc -i "$name" -s /init -n -q -t 6 -T 2 -A 1 >&2; then
            echo "$mac"
            break
        fi
    done
}

endpoint() {
    if value=$(arg contractor.endpoint); then echo "$value"; return; fi
    next_server=$(sed -n 's/^next_server=//p' /run/lease 2>/dev/null)
    server=$(sed -n 's/^server=//p' /run/lease 2>/dev/null)
    case $next_server in ""|0.0.0.0) next_server=$server ;; esac
    echo "$next_server:8069"
}

post() {
    url="http://$(endpoint)/discovery"
    for attempt in 1 2 3 4 5; do
        say "posting the report to $url (attempt $attempt)"
        # timeout, not wget -T: busybox-static 1.35's wget crashes with -T
        if timeout 20 wget -q -O /tmp/answer --header "Content-Type: application/json" \
            --post-data "$1" "$url"; then
            say "answer: $(cat /tmp/answer)"
            return 0
        fi
        sleep 2
    done
    say "could not post the report to $url"
    return 1
}

# Mount, load the modules, DHCP: sets $mac to the NIC that got a lease (empty if none)
bring_up() {
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev 2>/dev/null
    mkdir -p /run /tmp
    while read -r module; do insmod "$module" 2>/dev/null; done < /etc/modules
    mac=$(network)
    [ -n "$mac" ] || say "no NIC got a DHCP lease"
}

# Power off, or with contractor.debug=1 a shell on the console first
finish() {
    if [ "$(arg contractor.debug)" = 1 ]; then
        say "contractor.debug=1: a shell instead of powering off"
        setsid sh -c 'exec sh </dev/console >/dev/console 2>&1'
    fi
    say "powering off"
    poweroff -f
}

main() {
    bring_up
    if [ -n "$mac" ]; then
        body=$(report "$mac")
        say "report: $body"
        post "$body"
    fi
    finish
}

case ${1:-} in
    report) report "$(arg contractor.mac)"; exit 0 ;;
    deconfig|bound|renew|leasefail|nak) dhcp_event "$1"; exit 0 ;;
esac
# Sourced by another /init (CONTRACTOR_INIT_LIB=1 . init.sh): its functions only
# (bring_up, finish, arg, say, endpoint, report, post), and udhcpc's events above.
[ -z "${CONTRACTOR_INIT_LIB:-}" ] || return 0
main
