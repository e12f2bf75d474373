#include <iostream>
#include "agent/config.h"
int main() { std::cout << pacs::default_config()->source << "\n"; }
