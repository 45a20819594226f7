/* SPDX-License-Identifier: Apache-2.0 */
/* The link check of one layer (agent/CMakeLists.txt): linked with every object of the
 * layer and only the layers below it, so that a call up is an undefined reference. */
int main(void)
{
        return 0;
}
