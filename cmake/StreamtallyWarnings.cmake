# Strict warnings for StreamTally's own targets only (never for third-party headers:
# those are included as SYSTEM by their imported targets).
function(streamtally_strict target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()
