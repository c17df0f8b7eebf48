/* C99 test of include/omnirt.h: written next. */
#include "omnirt.h"
int main(void) { return 0; }
