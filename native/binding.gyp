{
  "targets": [{
    "target_name": "tern_netns",
    "sources": ["netns.c"],
    "cflags": ["-Wall", "-Wextra", "-O2"]
  }]
}
