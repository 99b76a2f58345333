//! cgroup_skb ingress/egress: wire bytes, packets and the 5-tuple per socket cookie.
