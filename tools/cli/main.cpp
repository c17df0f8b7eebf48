#include "include/omnirt.h"
int main() { return 0; }
