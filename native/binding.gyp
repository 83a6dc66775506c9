{
  "targets": [
    {
      "target_name": "tern_netns",
      "sources": ["netns.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "tern-cni-shim",
      "type": "executable",
      "sources": ["cni-shim.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "ldflags": ["-static"]
    }
  ]
}
