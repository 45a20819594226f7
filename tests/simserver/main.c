#include <stdio.h>

int main(void)
{
	fputs("ca-simserver: not written yet\n", stderr);
	return 1;
}
