#!/bin/sh
# ucarp up/down script that hands the address work to `ipfail hook`: the
# whole group (every IP of its config section) is probed, added and announced
# when ucarp becomes MASTER, and removed when it stops being MASTER.
#
# ucarp runs its scripts as `SCRIPT INTERFACE VIRTUAL_IP [XPARAM]` and tells
# up from down only by which script it runs, so install this file once and
# link it under two names; the name ending in -up or -down is the event:
#
#   install -m 755 packaging/ucarp-updown.sh /usr/local/libexec/ipfail/ucarp-updown
#   ln -s ucarp-updown /usr/local/libexec/ipfail/ucarp-up
#   ln -s ucarp-updown /usr/local/libexec/ipfail/ucarp-down
#
#   ucarp --interface=eth0 --srcip=192.0.2.1 --vhid=10 --pass=s3cret \
#         --addr=203.0.113.10 --xparam=web --shutdown \
#         --upscript=/usr/local/libexec/ipfail/ucarp-up \
#         --downscript=/usr/local/libexec/ipfail/ucarp-down
#
# --xparam names the config section (group) to move; ucarp's own --addr only
# identifies the vhid (ucarp hashes it into its adverts). Without --xparam
# the section is the one named like ucarp's interface.
#
# Environment: IPFAIL (the binary, default /usr/local/sbin/ipfail) and
# IPFAIL_CONFIG (default /usr/local/etc/mas_ip_manager.cfg).
#
# The hook's lines go to this script's stdout/stderr (ucarp's, or syslog
# with `ucarp ... 2>&1 | logger -t ucarp`). Exit status is the hook's:
# 0 done, 1 some IP could not be applied, 2 usage or config error, 3 the
# ipfail daemon owns the group or its lock stayed busy.
set -u

ipfail=${IPFAIL:-/usr/local/sbin/ipfail}
config=${IPFAIL_CONFIG:-/usr/local/etc/mas_ip_manager.cfg}
iface=${1:-}
group=${3:-$iface}

case "$(basename "$0")" in
    *-up | *-up.sh) action=MASTER ;;
    *-down | *-down.sh) action=BACKUP ;;
    *)
        echo "$0: call me through a name ending in -up or -down (see the comment at the top)" >&2
        exit 2
        ;;
esac
if [ -z "$group" ]; then
    echo "$0: no group: pass ucarp --xparam=SECTION" >&2
    exit 2
fi

exec "$ipfail" hook --carp="$group" --action="$action" -c "$config"
