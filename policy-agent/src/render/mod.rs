// From compiled policy to kernel objects: iptables chains and ipsets.

pub mod dataplane;
