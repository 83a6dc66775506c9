#!/usr/bin/env bash
# Normalised view of the ROOT network namespace: links, addresses, routes,
# rules, iptables/ip6tables (both backends), ipsets and the net sysctls that
# Tern would touch. Counters and volatile fields are dropped so two snapshots
# of an unchanged namespace are identical.
set -u
echo "## links"; ip -o link show | sed -E 's/ +(state|qlen|link-netnsid) [^ ]+//g; s/\\.*//' | sort
echo "## addrs"; ip -o addr show | sed -E 's/(valid_lft|preferred_lft) [^ ]+//g' | sort
echo "## routes4"; ip -4 route show table all | grep -v ' expires ' | sort
echo "## routes6"; ip -6 route show table all | sed -E 's/ expires [^ ]+//' | sort
echo "## rules"; ip rule show; ip -6 rule show
for t in iptables ip6tables iptables-legacy ip6tables-legacy; do
  if command -v "$t-save" >/dev/null 2>&1; then
    echo "## $t"; "$t-save" 2>/dev/null | grep -vE '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//' | sort
  fi
done
echo "## ipset"; (ipset list -n 2>/dev/null || true) | sort
echo "## sysctl"
for k in net/ipv4/ip_forward net/ipv6/conf/all/forwarding net/ipv4/conf/all/rp_filter net/ipv4/conf/all/proxy_arp; do
  printf '%s=%s\n' "$k" "$(cat /proc/sys/$k 2>/dev/null)"
done
