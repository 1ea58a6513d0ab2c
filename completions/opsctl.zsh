#compdef opsctl

_opsctl_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _OPSCTL_COMPLETE=complete_zsh opsctl)
}

compdef _opsctl_completion opsctl
