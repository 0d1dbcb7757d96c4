/*
 * What the API layer offers the LD_PRELOAD shim beyond include/rudp.h.
 * Internal: hidden from the library's users by the version script.
 */
#ifndef RUDP_CORE_API_H
#define RUDP_CORE_API_H

#include <stdbool.h>

/* Whether fd is an rudp socket, of this process or inherited. */
bool rudp__owns(int fd);

#endif
