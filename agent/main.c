#include <stdio.h>

int main(void)
{
        fputs("connector-agent: not written yet\n", stderr);
        return 1;
}
