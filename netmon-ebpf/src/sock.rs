//! cgroup socket hooks: who owns a socket (process context, so the pid is right).
