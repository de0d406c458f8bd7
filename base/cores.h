/* cores.h -- how many cores this process may use: the default thread count of
 * prep's image decoding and predict's libtorch threads. Not MPI: every verb
 * asks it, with or without a world. */
#ifndef FOLDLINE_CORES_H
#define FOLDLINE_CORES_H

/* The cores this process may run on (its CPU affinity mask). */
int fl_cores_available(void);

#endif
