"""Native builds and the Python-only routes, in layers (each imports only those above it):

    globs    the glob language of recipe inputs and outputs
    recipe   kernels/<target>.yaml: load, validate, which targets changed paths feed
    runner   a recipe's environment, setup script, toolchain facts; running a command logged, in its process group
    host     what this machine offers: toolkits, hardware, memory for jobs, compiler launcher
    cache    the content-addressed store: keys, objects, last-good pointers, per-target locks
    builder  one target: cached, or built and stored
    stack    the workspace side: targets a stack touches, its builds, overlay and wheel for a stack

Nothing is imported here, so `patchq.build.recipe` costs no more than itself.
"""
