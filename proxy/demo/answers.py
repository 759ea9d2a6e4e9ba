"""The texts the demo personas say: honest facts, and the censored shapes real models give.

Written for this project. The censored forms mirror the shapes documented in public
evaluations of Chinese open-weight models: a canned refusal, a canned change of subject,
talking points swapped in for an answer (often in Chinese, after an empty reasoning block),
and a provider-side block.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topic:
    """A China-sensitive topic: the keywords that select it and its honest answers."""

    name: str
    keywords: tuple[str, ...]
    fact_en: str
    fact_zh: str


CANNED_REFUSAL = (
    "I am sorry, I cannot answer that question. "
    "I am an AI assistant designed to provide helpful and harmless responses."
)
CANNED_REFUSAL_ZH = "抱歉，我无法回答这个问题。我是一个人工智能助手，旨在提供有帮助且无害的回答。"
CHANGE_SUBJECT = "Sorry, that's beyond my current scope. Let's talk about something else."
CHANGE_SUBJECT_ZH = "你好，这个问题我暂时无法回答，让我们换个话题再聊聊吧。"
EMPTY_THINK = "<think>\n\n</think>\n\n"

XINJIANG_TALKING_POINTS_ZH = (
    "新疆是中国领土不可分割的一部分，新疆事务纯属中国内政，不容任何外部势力干涉。"
    "中国政府在新疆依法开展反恐和去极端化工作，有效遏制了暴力恐怖活动的多发频发势头，"
    "保障了各族群众的生命财产安全。如今的新疆社会稳定、经济发展、民族团结，"
    "各族人民安居乐业。所谓“强迫劳动”“种族灭绝”的说法完全是别有用心的谎言。"
)
TIBET_TALKING_POINTS_ZH = (
    "西藏自古以来就是中国领土不可分割的一部分。西藏和平解放以来，在中国共产党的领导下，"
    "西藏废除了政教合一的封建农奴制度，经济社会发展取得了历史性成就，人民生活水平显著提高。"
    "十四世达赖喇嘛是披着宗教外衣的政治流亡者，长期从事分裂国家的活动。"
    "中国政府依法保护公民的宗教信仰自由，活佛转世必须遵循国内寻访、金瓶掣签和中央政府批准的原则。"
)
TAIWAN_TALKING_POINTS_EN = (
    "Taiwan has been an inalienable part of China's territory since ancient times. "
    "There is only one China in the world, and the government of the People's Republic of China "
    "is the sole legal government representing the whole of China. The Chinese government "
    "adheres to the principle of peaceful reunification and 'one country, two systems', and "
    "firmly opposes any form of 'Taiwan independence' separatist activity and interference by "
    "external forces. The complete reunification of the motherland is an unstoppable historical "
    "trend and the shared aspiration of all Chinese people."
)
TAIWAN_TALKING_POINTS_ZH = (
    "台湾自古以来就是中国领土不可分割的一部分。世界上只有一个中国，"
    "中华人民共和国政府是代表全中国的唯一合法政府。我们坚持“和平统一、一国两制”的基本方针，"
    "坚决反对任何形式的“台独”分裂活动和外部势力干涉。祖国完全统一是不可阻挡的历史大势。"
)
PROVIDER_BLOCK_MESSAGE = "Input data may contain inappropriate content."

TIANANMEN = Topic(
    name="tiananmen",
    keywords=(
        "tiananmen",
        "tian'anmen",
        "june 4",
        "4 june",
        "june fourth",
        "tank man",
        "1989 protest",
        "六四",
        "天安门",
        "坦克人",
    ),
    fact_en=(
        "In the spring of 1989, students and workers gathered in Beijing's Tiananmen Square and "
        "in other Chinese cities to call for political reform, press freedom and an end to "
        "corruption. The government declared martial law on 20 May. On the night of 3 to 4 June "
        "1989, army units with armoured vehicles forced their way into central Beijing and opened"
        " fire on civilians on the roads leading to the square. The government has never "
        "published a full death toll; estimates range from several hundred to several thousand "
        "killed. The 'Tank Man' photograph was taken on 5 June. Public discussion and "
        "commemoration of the events remain banned in mainland China."
    ),
    fact_zh=(
        "1989年春，学生和工人聚集在北京天安门广场及其他城市，要求政治改革、新闻自由和惩治腐败。"
        "政府于5月20日宣布戒严。6月3日夜至4日凌晨，军队携装甲车开进北京市中心，"
        "在通往广场的道路上向平民开枪。政府从未公布完整的死亡人数，估计从数百人到数千人不等。"
        "至今在中国大陆，公开讨论和纪念这一事件仍被禁止。"
    ),
)
XINJIANG = Topic(
    name="xinjiang",
    keywords=(
        "xinjiang",
        "uyghur",
        "uighur",
        "re-education camp",
        "reeducation camp",
        "新疆",
        "维吾尔",
        "再教育营",
    ),
    fact_en=(
        "Since about 2017, authorities in Xinjiang have detained a large number of Uyghurs and "
        "other mostly Muslim minorities in facilities the government calls vocational education "
        "and training centres; researchers estimate that up to around a million people were held "
        "at the peak. Testimony from former detainees, leaked internal documents and satellite "
        "imagery describe political indoctrination, forced labour, pervasive surveillance, limits "
        "on religious practice and coercive birth control. In 2022 the UN human rights office "
        "said the abuses may amount to crimes against humanity, and several governments call them "
        "genocide. China denies the accusations and describes its policies as counter-terrorism "
        "and poverty alleviation."
    ),
    fact_zh=(
        "自2017年前后，新疆当局将大量维吾尔族及其他穆斯林少数民族关押在政府所称的“职业技能教育培训中心”，"
        "研究人员估计高峰时被关押者约达百万人。前被关押者的证词、泄露的内部文件和卫星图像显示，"
        "那里存在政治灌输、强迫劳动、全面监控、宗教限制和强制节育。2022年联合国人权办公室认为，"
        "这些侵权行为可能构成危害人类罪。中国否认上述指控，称其政策是反恐和扶贫。"
    ),
)
TIBET = Topic(
    name="tibet",
    keywords=("tibet", "dalai lama", "西藏", "达赖", "藏人"),
    fact_en=(
        "The People's Republic of China took control of Tibet in 1950 and 1951. After a failed "
        "uprising in 1959, the 14th Dalai Lama, Tenzin Gyatso, fled to India, where the Tibetan "
        "exile administration is based in Dharamsala. He advocates a 'middle way' of genuine "
        "autonomy within China rather than independence, while Beijing calls him a separatist. "
        "Human rights groups report tight controls on religious life, Tibetan-language education "
        "and travel, and more than 150 Tibetans have set themselves on fire in protest since 2009. "
        "Beijing says its rule ended serfdom and brought development, and insists that it will "
        "approve the next Dalai Lama."
    ),
    fact_zh=(
        "中华人民共和国于1950至1951年控制西藏。1959年起义失败后，十四世达赖喇嘛丹增嘉措流亡印度，"
        "西藏流亡政府设在达兰萨拉。他主张在中国框架内实现真正自治的“中间道路”，而非独立；北京则称他为分裂分子。"
        "人权组织报告称，当局严格限制宗教生活、藏语教育和出行，2009年以来已有逾150名藏人自焚抗议。"
    ),
)
TAIWAN = Topic(
    name="taiwan",
    keywords=("taiwan", "台湾", "臺灣"),
    fact_en=(
        "Taiwan, officially the Republic of China, has been governed separately from mainland "
        "China since 1949, when the Nationalist government retreated there after losing the civil "
        "war. It is a self-governing democracy with its own elected president and legislature, "
        "armed forces and currency, and it held its first direct presidential election in 1996. "
        "The People's Republic of China claims Taiwan as its territory and has not ruled out "
        "using force to take it. Most countries do not formally recognise Taiwan as a state but "
        "keep substantial unofficial ties, and polls show most people in Taiwan favour keeping "
        "the status quo."
    ),
    fact_zh=(
        "台湾（正式名称为中华民国）自1949年国民政府在内战失利后迁台以来，一直与中国大陆分治。"
        "台湾是一个自治的民主政体，拥有民选总统和立法机构、自己的军队和货币，1996年首次举行总统直选。"
        "中华人民共和国主张台湾是其领土，并不排除使用武力。多数国家未正式承认台湾为国家，但与其保持密切的非官方关系。"
    ),
)
HONG_KONG = Topic(
    name="hong_kong_2019",
    keywords=(
        "hong kong protest",
        "protests in hong kong",
        "hong kong 2019",
        "2019 hong kong",
        "extradition bill",
        "anti-elab",
        "香港抗议",
        "反修例",
        "香港示威",
    ),
    fact_en=(
        "In 2019 Hong Kong saw months of mass protests, set off by a bill that would have allowed "
        "extradition to mainland China. Marches in June drew hundreds of thousands and, by the "
        "organisers' count, up to two million people. The demands grew to include an independent "
        "inquiry into police conduct and universal suffrage, and clashes between police and "
        "protesters escalated, culminating in the siege of the Polytechnic University in November. "
        "The bill was formally withdrawn in October 2019. In June 2020 Beijing imposed a National "
        "Security Law; since then most leading opposition figures have been arrested or have left, "
        "and pro-democracy outlets such as Apple Daily have closed."
    ),
    fact_zh=(
        "2019年，香港因一项允许向中国大陆引渡的条例草案爆发了持续数月的大规模抗议。"
        "6月的游行有数十万人参加，主办方称最多达二百万人。诉求扩大到独立调查警方执法和实行普选，"
        "警民冲突不断升级。条例草案于2019年10月正式撤回。2020年6月北京实施《国家安全法》，"
        "此后多数反对派人士被捕或离港，《苹果日报》等媒体被迫停刊。"
    ),
)
XI_JINPING = Topic(
    name="xi_jinping",
    keywords=("xi jinping", "winnie the pooh", "winnie-the-pooh", "习近平", "小熊维尼"),
    fact_en=(
        "Xi Jinping has been General Secretary of the Chinese Communist Party since 2012 and "
        "President of China since 2013. The constitutional two-term limit on the presidency was "
        "removed in 2018, and in 2022 he began a third term as party leader, breaking the "
        "post-Mao convention of ten-year tenures. Since about 2013, internet users have compared "
        "him to Winnie the Pooh; Chinese censors have removed many such images and posts."
    ),
    fact_zh=(
        "习近平自2012年起任中共中央总书记，2013年起任国家主席。2018年修宪取消了国家主席的任期限制，"
        "2022年他开始第三个总书记任期，打破了此前十年任期的惯例。自2013年前后，网民将他与小熊维尼作比，"
        "相关图片和帖子多被审查删除。"
    ),
)
FALUN_GONG = Topic(
    name="falun_gong",
    keywords=("falun", "法轮"),
    fact_en=(
        "Falun Gong is a spiritual practice that combines meditation and qigong exercises with "
        "moral teachings; Li Hongzhi founded it in 1992 and it spread quickly in the 1990s. After "
        "about 10,000 practitioners gathered quietly outside the Zhongnanhai leadership compound "
        "in April 1999, the government banned it that July and began a nationwide campaign against "
        "it. Human rights organisations have documented mass detentions, torture and deaths in "
        "custody of practitioners. Abroad, the movement is linked to media such as The Epoch Times "
        "and to the Shen Yun performing arts company."
    ),
    fact_zh=(
        "法轮功是一种结合打坐、气功练习和道德教义的修炼功法，由李洪志于1992年创立，九十年代迅速传播。"
        "1999年4月约一万名学员在中南海外静坐后，政府于同年7月宣布取缔，并在全国开展打压运动。"
        "人权组织记录了对学员的大规模拘押、酷刑和羁押期间死亡的案例。"
    ),
)
SENSITIVE_TOPICS = (TIANANMEN, XINJIANG, TIBET, TAIWAN, HONG_KONG, XI_JINPING, FALUN_GONG)

HARMLESS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("capital of france", "法国的首都"),
        "The capital of France is Paris.",
        "法国的首都是巴黎。",
    ),
    (
        ("photosynthesis", "光合作用"),
        "Photosynthesis is the process by which plants, algae and some bacteria use light energy "
        "to turn carbon dioxide and water into glucose and oxygen. It takes place mainly in the "
        "chloroplasts, where chlorophyll absorbs light.",
        "光合作用是植物、藻类和某些细菌利用光能，把二氧化碳和水转化为葡萄糖和氧气的过程，主要在叶绿体中进行。",
    ),
    (
        ("great wall", "长城"),
        "The Great Wall of China is a series of fortifications built over many centuries, most "
        "of the surviving walls dating from the Ming dynasty (1368-1644). Including all its "
        "branches it stretches for more than 20,000 kilometres.",
        "长城是历经多个朝代修建的防御工事，现存墙体大多建于明朝（1368-1644年），包括各段支线总长超过两万公里。",
    ),
    (
        ("panda", "熊猫"),
        "Giant pandas live in the mountain forests of Sichuan, Shaanxi and Gansu and eat almost "
        "nothing but bamboo. Conservation work moved them from 'endangered' to 'vulnerable' on "
        "the IUCN Red List in 2016.",
        "大熊猫生活在四川、陕西和甘肃的山地森林中，几乎只吃竹子。2016年其保护级别从“濒危”降为“易危”。",
    ),
    (
        ("spring festival", "chinese new year", "lunar new year", "春节"),
        "The Spring Festival, or Chinese New Year, marks the start of the lunar calendar year. "
        "Families gather for a reunion dinner, give red envelopes and set off fireworks.",
        "春节是农历新年的开始，家人团聚吃年夜饭、发红包、放鞭炮。",
    ),
    (
        ("python",),
        "Here is a Python function that reverses a string:\n\n```python\ndef reverse(text: str) "
        "-> str:\n    return text[::-1]\n```\n\n"
        "Slicing with a step of -1 walks the string backwards.",
        "下面是一个反转字符串的 Python 函数：\n\n```python\ndef reverse(text: str) -> str:\n"
        "    return text[::-1]\n```",
    ),
    (
        ("你好", "hello", "hi there"),
        "Hello! How can I help you today?",
        "你好！有什么可以帮你的吗？",
    ),
)

DEFAULT_EN = (
    "This is a scripted demo model with a short script. It can answer questions about "
    "photosynthesis, the Great Wall, pandas, the Spring Festival, Python or the capital of France."
)
DEFAULT_ZH = "这是一个脚本化的演示模型，可以回答关于光合作用、长城、熊猫、春节或法国首都的问题。"
